"""The environment check that runs before any training: Python, torch and torchvision
versions, which process-group backends this torch has, CUDA, cuDNN and the GPUs, as JSON
(kiln ingests it as the task's metrics, so the report shows what the results came from)."""
import json
import os
import platform
import sys

import torch
import torch.distributed as dist


def main():
    out = sys.argv[1]
    info = {
        "python": platform.python_version(),
        "executable": sys.executable,
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "distributed": dist.is_available(),
        "gloo": dist.is_available() and dist.is_gloo_available(),
        "nccl": dist.is_available() and dist.is_nccl_available(),
        "mpi": dist.is_available() and dist.is_mpi_available(),
        "cuda": torch.cuda.is_available(),
        "cuda_version": torch.version.cuda or "none",
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else 0,
        "gpus": torch.cuda.device_count(),
        "gpu_names": ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())) or "none",
        "visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
    }
    try:
        import torchvision
        info["torchvision"] = torchvision.__version__
    except ImportError:
        info["torchvision"] = "missing"
    if not info["gloo"] and not info["nccl"]:
        print("no usable process-group backend (gloo or nccl) in this torch", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(info, indent=1))
    with open(out + ".tmp", "w") as f:
        json.dump(info, f, indent=1)
    os.replace(out + ".tmp", out)


if __name__ == "__main__":
    main()
