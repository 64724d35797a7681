"""What `GAN_BATCHING=auto` and `GAN_WORKERS=auto` pick (README "Batching" has the figures)."""

from service.settings import auto_defaults, usable_cpus


def test_in_process_with_one_worker_per_core_on_cpu_and_gpu() -> None:
    per_core = min(usable_cpus(), 8)
    assert auto_defaults(accelerator=False) == ("inprocess", per_core)
    assert auto_defaults(accelerator=True) == ("inprocess", per_core)


def test_adaptive_keeps_one_api_worker_only_on_cpu() -> None:
    assert auto_defaults(accelerator=False, batching="adaptive") == ("adaptive", 1)
    assert auto_defaults(accelerator=True, batching="adaptive") == (
        "adaptive",
        min(usable_cpus(), 8),
    )
