# gpu-env.sh — sourced by the GPU scripts: sets PYTHON (the interpreter with PyTorch that
# sees a GPU: $PYTHON if given, else /usr/bin/python3, else the first python3 on PATH) and
# adds to LD_LIBRARY_PATH the folders of the CUDA libraries kiln-kernels' modules load
# (libcudart.so.13, libcublas.so.13, libcudnn.so.9, libnccl.so.2) that the loader does not
# find, looked up in the CUDA toolkit and beside that PyTorch (pip's nvidia-* wheels).
if [ -z "${PYTHON:-}" ]; then
	PYTHON=/usr/bin/python3
	for p in /usr/bin/python3 python3; do
		if "$p" -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
			PYTHON=$p
			break
		fi
	done
fi
export PYTHON
kiln_gpu_libs=""
for lib in libcudart.so.13 libcublas.so.13 libcudnn.so.9 libnccl.so.2; do
	ldconfig -p 2>/dev/null | grep -q "$lib " && continue
	dir=$( (ls -d /usr/local/cuda/lib64/"$lib" /usr/local/cuda/targets/*/lib/"$lib" 2>/dev/null
		"$PYTHON" -c "import glob, os, nvidia
for p in nvidia.__path__: print('\n'.join(glob.glob(os.path.join(p, '**', '$lib'), recursive=True)))" 2>/dev/null) |
		head -n 1)
	[ -n "$dir" ] && kiln_gpu_libs="${kiln_gpu_libs:+$kiln_gpu_libs:}$(dirname "$dir")"
done
[ -n "$kiln_gpu_libs" ] && export LD_LIBRARY_PATH="$kiln_gpu_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
