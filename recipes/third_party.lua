-- third_party.lua — a trainer nobody here wrote, run unmodified (third_party/main.py: its
-- own --rank/--world-size/--dist-url launcher, progress only printed, fixed file names in
-- the directory it runs in, a best model only when accuracy improved). Each config runs in
-- a folder of its own (cwd), its ranks started by kiln (ranks), its metrics and progress
-- read from its log lines (log_metrics, log_progress), its best model an optional output,
-- and one failing config does not stop the others (settings{}).
--
--   kiln -C build/third_party run recipes/third_party.lua
--   kiln -C build/third_party run recipes/third_party.lua epochs=10 lrs=0.2,0.1,0.05

local P = params { python = "/usr/bin/python3", epochs = 3, lrs = "0.1,0.02", ranks = 2 }
settings { keep_going = true }
external { RECIPE_DIR .. "/third_party" }
local script = RECIPE_DIR .. "/third_party/main.py"

for lr in P.lrs:gmatch("[^,]+") do
  local dir = "runs/lr" .. lr
  task {
    name = "train/lr" .. lr, tags = { lr = lr },
    cwd = dir, ranks = P.ranks, inputs = { script },
    outputs = { dir .. "/checkpoint.pth.tar" },
    optional_outputs = { dir .. "/model_best.pth.tar" },
    resume = { dir .. "/checkpoint.pth.tar" },   -- a retry or a re-run continues from it
    log_metrics = { loss = "%[rank 0%] Epoch: %[%d+%]%s+Loss ([%d.]+)", acc1 = "%[rank 0%]  %* Acc@1 ([%d.]+)" },
    log_progress = { "%[rank 0%] Epoch: %[(%d+)%]", total = P.epochs }, -- the last epoch it printed (from 0)
    run = { P.python, script, "--epochs", P.epochs, "--lr", lr, "--world-size", "{world_size}", "--rank", "{rank}",
            "--dist-url", "tcp://{master_addr}:{master_port}", "--resume", "checkpoint.pth.tar" },
  }
end

plot { name = "loss", type = "lines", from = "train/*", y = "loss", series = "lr",
       title = "training loss (from the log lines)", xlabel = "epoch", ylabel = "loss" }
plot { name = "acc1", type = "bars", from = "train/*", x = "lr", y = "acc1",
       title = "top-1 accuracy after the last epoch", ylabel = "Acc@1 (%)" }
