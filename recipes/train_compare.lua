-- train_compare.lua — DDP vs a hand-written all-reduce vs a parameter server, each run
-- with torchrun on the same model and data: an environment check first, per-epoch JSON
-- from every run (ingested as metrics), five comparison charts and a performance report
-- with speedups relative to DDP, all from kiln's own metrics / plot / report verbs. Beside
-- the training runs, `kiln-kernels comm` measures the three ways of moving gradients on the
-- same GPUs (or as many CPU threads as processes) without the model: bus bandwidth per
-- message size, the nccl-tests way, charted as comm_bandwidth and comm_peak.
--
-- The defaults train on CPU with gloo (2 processes, a small MLP on synthetic data, 5
-- epochs); where GPUs are known each run leases `gpus` of them and uses NCCL. Each run
-- snapshots itself after every epoch: one stopped part way continues at the epoch.
--
--   kiln -C build/train run recipes/train_compare.lua
--   kiln -C build/train run recipes/train_compare.lua seeds=3   (mean ± std, error bars)
--   kiln -C build/train report recipes/train_compare.lua
--
-- The scripts beside this file need Python with torch: python=/path/to/python points the
-- recipe at another interpreter (a venv, conda) instead of Debian's.

local P = params {
  python = "/usr/bin/python3",
  methods = "ddp,allreduce,ps",
  nproc = 2,                -- processes per run without GPUs
  gpus = -1,                -- GPUs per run; -1: up to 2 where GPUs are known, else none
  epochs = 5,
  batch = 64,               -- per worker per step
  lr = 0.01,
  samples = 16384,
  hidden = 256,
  seeds = 1,                -- repeats of every method (mean ± std in tables and bars)
  comm_max = "",            -- largest message of the comm measurements ("" : 256M on GPUs, 16M on CPU)
}

local here = RECIPE_DIR .. "/train_compare"
external { here }
local scripts = { here .. "/common.py" }
local gpus = P.gpus >= 0 and P.gpus or math.min(gpus_available(), 2)

local env = task {
  name = "env/check",
  inputs = { here .. "/envcheck.py" },
  outputs = { "results/env.json" },
  metrics = "results/env.json",
  gpus = gpus > 0 and 1 or 0,
  run = { P.python, here .. "/envcheck.py", "{out}" },
}

local runs = {}
for method in P.methods:gmatch("[^,]+") do
  for seed = 1, P.seeds do
    local out = string.format("results/%s-s%d.json", method, seed)
    runs[#runs + 1] = task {
      name = string.format("train/%s/s%d", method, seed),
      deps = { env },
      inputs = { here .. "/" .. method .. ".py", table.unpack(scripts) },
      outputs = { out },
      metrics = out,
      tags = { method = method, seed = seed },
      gpus = gpus,
      torchrun = { nproc = gpus > 0 and "gpus" or P.nproc },
      timeout = "30m",
      retry_on = { "port", "comm" },
      resume = { string.format("snapshots/%s-s%d.pt", method, seed) }, -- Ctrl-C, a retry: on at the epoch
      env = { PYTHONDONTWRITEBYTECODE = "1" }, -- no __pycache__ beside the scripts
      run = { P.python, here .. "/" .. method .. ".py", "--epochs", P.epochs, "--batch", P.batch,
              "--samples", P.samples, "--hidden", P.hidden, "--lr", P.lr, "--seed", seed, "--out", "{out}",
              "--resume", "{resume}" },
    }
  end
end

-- the gradient-exchange patterns the three methods use: all-reduce (DDP and the hand-written
-- ring), reduce + broadcast, and the send/recv parameter server that ps.py runs
local ranks = gpus > 0 and gpus or P.nproc
local comm_max = P.comm_max ~= "" and P.comm_max or (gpus > 0 and "256M" or "16M")
for _, pattern in ipairs { "allreduce", "ps", "p2p" } do
  local out = "results/comm-" .. pattern .. ".json"
  task {
    name = "comm/" .. pattern,
    deps = { env },
    outputs = { out },
    metrics = out,
    tags = { pattern = pattern },
    gpus = gpus,
    cpus = gpus > 0 and 1 or ranks,
    run = { "kiln-kernels", "comm", "--patterns", pattern, "--ranks", ranks, "--max-bytes", comm_max, "--out", "{out}" },
  }
end

plot { name = "comm_bandwidth", type = "lines", from = "comm/*", y = "sizes.busbw_gbs", series = "pattern",
       xscale = "log2", title = "Bus bandwidth per message size", xlabel = "message size (bytes)",
       ylabel = "bus bandwidth", unit = "GB/s" }
plot { name = "comm_peak", type = "bars", from = "comm/*", x = "pattern", y = "peak_algbw_gbs",
       baseline = "pattern=allreduce", title = "Gradient exchange: best algorithm bandwidth",
       ylabel = "message size / time", unit = "GB/s" }
plot { name = "throughput", type = "bars", from = "train/*", x = "method", y = "throughput",
       baseline = "method=ddp", title = "Training throughput", ylabel = "throughput", unit = "samples/s", best = "max" }
plot { name = "train_time", type = "bars", from = "train/*", x = "method", y = "train_time",
       baseline = "method=ddp", title = "Training time", ylabel = "time", unit = "s", best = "min" }
plot { name = "loss", type = "lines", from = "train/*", y = "epochs.loss", series = "method",
       title = "Evaluation loss per epoch", xlabel = "epoch", ylabel = "loss" }
plot { name = "accuracy", type = "lines", from = "train/*", y = "epochs.accuracy", series = "method",
       title = "Evaluation accuracy per epoch", xlabel = "epoch", ylabel = "accuracy" }
plot { name = "comm_share", type = "bars", from = "train/*", x = "method", y = "comm_share",
       baseline = "method=ddp", title = "Communication overhead (share of training time)",
       ylabel = "communication / training time", best = "min" }

task {
  name = "report/performance",
  deps = runs,
  outputs = { "results/performance.md" },
  run = { "@kiln", "metrics", "train/*", "--rows", "method",
          "--value", "throughput,train_time,final_accuracy,comm_share,comm_time",
          "--baseline", "method=ddp", "--format", "md", "--out", "{out}" },
}
