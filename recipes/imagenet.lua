-- imagenet.lua — ImageNet-style ResNet training (torchvision models) three ways: one
-- process, DDP over this node's leased GPUs under torchrun (CPU processes with gloo where
-- there are none), and DDP over several nodes through Slurm (nodes=N, N > 1). Per-epoch
-- metrics, a throughput chart and loss curves; each run's checkpoint is an output, and a
-- snapshot after every epoch lets an interrupted run continue where it stopped. Beside
-- them `kiln-kernels conv` times the network's convolutions forward, backward-data and
-- backward-filter (cuDNN, NHWC fp16 with autotuned algorithms, on a leased GPU; the C
-- reference on CPU), charted per layer (conv_layers) and for the whole network (conv_network).
--
--   kiln -C build/imagenet run recipes/imagenet.lua                       (dummy data, smoke)
--   kiln -C build/imagenet run recipes/imagenet.lua data=/data/imagenet dummy=false steps=0 epochs=90
--   kiln -C build/imagenet run recipes/imagenet.lua nodes=2 --executor slurm
--
-- python=/path/to/python points it at another interpreter with torch and torchvision.

local P = params {
  python = "/usr/bin/python3",
  arch = "resnet18",
  dummy = true,             -- random images: no dataset needed
  data = "",                -- ImageFolder root (train/, val/) when dummy=false
  image_size = -1,          -- -1: 224 with GPUs, 64 on CPU (a smoke test in seconds)
  batch = -1,               -- per process; -1: 64 with GPUs, 8 on CPU
  epochs = 2,
  steps = 3,                -- per epoch; 0: the whole dataset
  lr = 0.1,
  nproc = 2,                -- DDP processes without GPUs
  gpus = -1,                -- GPUs of the DDP run; -1: every known GPU
  nodes = 1,                -- > 1 adds the multi-node run (Slurm)
  modes = "single,ddp",
  conv = true,              -- the convolution measurements
  conv_batch = -1,          -- -1: the training batch with GPUs, 1 on CPU
}

local have_gpus = gpus_available() > 0
local gpus = P.gpus >= 0 and P.gpus or gpus_available()
local size = P.image_size > 0 and P.image_size or (have_gpus and 224 or 64)
local batch = P.batch > 0 and P.batch or (have_gpus and 64 or 8)
local here = RECIPE_DIR .. "/imagenet"
external { here }
if not P.dummy then
  assert(P.data ~= "", "dummy=false needs data=/path/to/imagenet (an ImageFolder tree)")
  external { P.data }
end

local function trainer(mode, extra)
  local out, ckpt = "results/" .. mode .. ".json", "checkpoints/" .. mode .. ".pt"
  local cmd = { P.python, here .. "/train.py", "--arch", P.arch, "--image-size", size, "--batch", batch,
                "--epochs", P.epochs, "--steps", P.steps, "--lr", P.lr, "--out", out, "--checkpoint", ckpt,
                "--resume", "{resume}" }
  if P.dummy then cmd[#cmd + 1] = "--dummy" else cmd[#cmd + 1] = "--data"; cmd[#cmd + 1] = P.data end
  -- the per-epoch snapshot: a retry, a re-run after Ctrl-C or a preempted job continues
  -- after the last finished epoch (kiln keeps it only for the same key)
  local t = { name = "imagenet/" .. mode, inputs = { here .. "/train.py" }, outputs = { out, ckpt },
              resume = { "checkpoints/" .. mode .. ".resume.pt" },
              metrics = out, tags = { mode = mode, arch = P.arch }, run = cmd, timeout = "48h",
              retry_on = { "port", "comm", "preempted" }, env = { PYTHONDONTWRITEBYTECODE = "1" } }
  for k, v in pairs(extra) do t[k] = v end
  return task(t)
end

for mode in P.modes:gmatch("[^,]+") do
  if mode == "single" then
    trainer("single", { gpus = have_gpus and 1 or 0, cpus = 2 })
  elseif mode == "ddp" then
    trainer("ddp", { gpus = gpus, torchrun = { nproc = gpus > 0 and "gpus" or P.nproc } })
  else
    error("unknown mode " .. mode .. " (modes: single, ddp)")
  end
end
if P.nodes > 1 then
  trainer("multinode", { gpus = gpus, executor = "slurm",
                         torchrun = { nproc = gpus > 0 and "gpus" or P.nproc, nnodes = P.nodes } })
end

plot { name = "imagenet_throughput", type = "bars", from = "imagenet/*", x = "mode", y = "images_per_s",
       baseline = "mode=single", title = P.arch .. " training throughput", unit = "images/s" }
plot { name = "imagenet_loss", type = "lines", from = "imagenet/*", y = "epochs.train_loss", series = "mode",
       title = P.arch .. " training loss", xlabel = "epoch", ylabel = "loss" }

if P.conv then
  -- the convolution table kiln-kernels knows closest to arch: ResNet-18's basic blocks or
  -- ResNet-50's bottlenecks
  local net = (P.arch == "resnet18" or P.arch == "resnet34") and "resnet18" or "resnet50"
  local conv_batch = P.conv_batch > 0 and P.conv_batch or (have_gpus and batch or 1)
  for _, pass in ipairs { "fwd", "bwd_data", "bwd_filter" } do
    local out = "results/conv-" .. pass .. ".json"
    task { name = "conv/" .. pass, outputs = { out }, metrics = out, tags = { pass = pass, net = net },
           gpus = have_gpus and 1 or 0, cpus = have_gpus and 1 or 2,
           run = { "kiln-kernels", "conv", "--net", net, "--passes", pass, "--batch", conv_batch,
                   "--size", size, "--out", "{out}" } }
  end
  plot { name = "conv_layers", type = "lines", from = "conv/*", y = "layers.tflops", series = "pass",
         title = net .. " convolutions, layer by layer", xlabel = "layer (network order)",
         ylabel = "throughput", unit = "TFLOP/s" }
  plot { name = "conv_network", type = "bars", from = "conv/*", x = "pass", y = "images_per_s",
         title = net .. " convolutions, whole network (batch " .. conv_batch .. ")", unit = "images/s" }
end
