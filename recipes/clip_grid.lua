-- clip_grid.lua — every image encoder x text encoder pair trained contrastively (a small
-- CLIP-style trainer beside this file, synthetic paired data), one config per GPU of a
-- shared server at a time: a GPU that someone else keeps busy (> 70 % utilised, or half its
-- memory) is waited for at most 5 minutes, then the least busy one is taken. One log per
-- config, named after it (.kiln/logs/clip/<image>-<text>@N.log); a checkpoint directory per
-- config; a snapshot per config after every epoch, so an interrupted config continues where
-- it stopped; a recall@1 table and heatmap; kiln's summary lists what failed with its log.
--
--   kiln -C build/clip run recipes/clip_grid.lua
--   kiln -C build/clip run recipes/clip_grid.lua --gpus 0,1,2,3        (only those GPUs)
--   kiln -C build/clip run recipes/clip_grid.lua images=starnet_s1,starnet_s2 epochs=5

local P = params {
  python = "/usr/bin/python3",
  images = "starnet_s1,starnet_s2,starnet_s3",
  texts = "clip:ViT-B/32,bert-base-chinese",
  epochs = 6,
  samples = 1024,
  wait = "5m",              -- how long a config waits for a busy GPU
}

local function list(text)
  local out = {}
  for item in text:gmatch("[^,]+") do out[#out + 1] = item end
  return out
end

local here = RECIPE_DIR .. "/clip_grid"
external { here }
local gpus = gpus_available() > 0 and 1 or 0
local short = { ["clip:ViT-B/32"] = "clip", ["bert-base-chinese"] = "bert" }

local configs = {}
for c in grid { image = list(P.images), text = list(P.texts) } do
  local config = c.image .. "-" .. (short[c.text] or c.text:gsub("[^%w_.-]", "_"))
  configs[#configs + 1] = task {
    name = "clip/" .. config,
    inputs = { here .. "/train.py" },
    outputs = { "checkpoints/" .. config, "results/" .. config .. ".json" },
    metrics = "results/" .. config .. ".json",
    tags = { image = c.image, text = c.text },
    resume = { "snapshots/" .. config .. ".pt" },   -- a Ctrl-C or a retry continues at the epoch
    gpus = gpus, gpu_wait = P.wait, gpu_wait_then = "run",
    env = { PYTHONDONTWRITEBYTECODE = "1" },
    run = { P.python, here .. "/train.py", "--image", c.image, "--text", c.text, "--epochs", P.epochs,
            "--samples", P.samples, "--checkpoint", "checkpoints/" .. config, "--out", "results/" .. config .. ".json",
            "--resume", "{resume}" },
  }
end

plot { name = "recall", type = "heatmap", from = "clip/*", x = "text", series = "image", y = "recall_at_1",
       title = "Image-to-text recall@1 by encoder pair" }
plot { name = "clip_loss", type = "lines", from = "clip/*", y = "epochs.loss", series = "image",
       title = "Contrastive loss", xlabel = "epoch", ylabel = "loss" }
task {
  name = "table/recall", deps = configs, outputs = { "results/recall.md" },
  run = { "@kiln", "metrics", "clip/*", "--rows", "image", "--cols", "text", "--value", "recall_at_1",
          "--format", "md", "--out", "{out}" },
}
