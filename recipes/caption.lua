-- caption.lua — captioning thousands of images split evenly over the GPUs (CPU workers
-- without GPUs): one map{} whose shards each load the captioner once and caption their
-- share in order, skipping images whose caption is already recorded, resuming after a
-- Ctrl-C or a crash at the first image not done; images/s and the ETA in the progress line.
--
--   kiln -C build/caption run recipes/caption.lua                  (300 generated images)
--   kiln -C build/caption run recipes/caption.lua images=5000 shards=8
--
-- The images are generated (Pillow, python3-pil); a real run points `images` at a folder.

local P = params {
  python = "/usr/bin/python3",
  images = 300,             -- how many to generate
  size = 96,
  shards = "gpus",          -- one per GPU; without GPUs one per CPU
}

local here = RECIPE_DIR .. "/caption"
external { here }
local names = {}
for i = 1, P.images do names[#names + 1] = string.format("%04d", i) end

local photos = task {
  name = "images/generate",
  inputs = { here .. "/make_images.py" },
  outputs = { "images" },
  run = { P.python, here .. "/make_images.py", P.images, "images", P.size },
}

local shards = tonumber(P.shards) or P.shards
local captions = map {
  name = "caption",
  items = names,
  shards = shards,
  input = "images/{item}.png",
  inputs = { here .. "/caption.py" },
  output = "captions/{item}.txt",
  atomic_outputs = true,    -- caption.py renames each caption into place: one there is finished
  gpus = gpus_available() > 0 and 1 or 0,
  env = { PYTHONDONTWRITEBYTECODE = "1" },
  retries = 1, retry_on = { "oom", "preempted" },
  run = { P.python, here .. "/caption.py", "--items", "{items}", "--images", "images", "--out", "captions" },
}

task {
  name = "captions/index",
  deps = { captions },
  outputs = { "captions.tsv" },
  -- one awk over every caption (a shell loop forks twice per image: seconds per thousand)
  run = "awk 'FNR == 1 { n = FILENAME; sub(/.*\\//, \"\", n); sub(/\\.txt$/, \"\", n); printf \"%s\\t%s\\n\", n, $0 }' "
        .. "captions/*.txt > {out}",
}
