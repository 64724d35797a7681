"""Train GAN generators on image data and export them to ONNX for the service."""
