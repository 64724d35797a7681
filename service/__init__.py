"""Serve exported GAN generators over HTTP with BentoML and ONNX Runtime (never torch)."""
