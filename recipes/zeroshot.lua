-- zeroshot.lua — distributed zero-shot evaluation of distilled Chinese-CLIP models over the
-- 20 ELEVATER datasets: data sync -> model sync -> eval (one GPU each where there are GPUs,
-- the C back end where there are none) -> analysis table -> charts.
--
-- With the default params it evaluates synthetic features from `kiln-kernels synth` for all
-- 20 x 4 cells. Point it at real ones with data_src / ckpt_src (local paths or host:path,
-- since sync is rsync): data_src/<dataset>/<model>/{images,text,labels}.npy holds each
-- model's image features, the dataset's class text embeddings and its labels.
--
--   kiln -C build/zeroshot run recipes/zeroshot.lua
--   kiln -C build/zeroshot run recipes/zeroshot.lua datasets=cifar-10,dtd models=team,large
--   kiln -C build/zeroshot report recipes/zeroshot.lua
--
-- Over a few GPU servers reached by ssh (no scheduler), the same recipe with a hosts file:
--   kiln -C build/zeroshot run recipes/zeroshot.lua --executor ssh --hosts lab.lua
-- Each eval goes to a free GPU on some host; the files it reads are copied to that host only
-- (and only once: kiln records what each host holds). With data_host / ckpt_host the sync
-- steps run on the server that holds the real data (data_src / ckpt_src are paths there):
--   kiln run recipes/zeroshot.lua --executor ssh --hosts lab.lua data_host=v802 ckpt_host=v800 \
--       data_src=/big/elevater ckpt_src=/data/ckpt

local P = params {
  datasets = "all",                       -- comma list, or "all"
  models = "team,large,huge,baseline",
  batch = 4096,                           -- image rows per streamed chunk in kiln-kernels
  data_src = "demo/elevater",             -- the synthetic default is generated below
  ckpt_src = "demo/checkpoints",
  samples = 400,                          -- synthetic only: samples per dataset
  dim = 128,                              -- synthetic only: feature dimension
  gpus = -1,                              -- GPUs per eval; -1: one where GPUs are known, else none
  data_host = "",                         -- ssh: the host holding data_src ("": this machine)
  ckpt_host = "",                         -- ssh: the host holding ckpt_src
  -- synthetic only: how well each stand-in model separates classes
  q_baseline = 0.34, q_large = 0.48, q_huge = 0.58, q_team = 0.55,
}

-- the ELEVATER image-classification suite, with its real class counts
local elevater = {
  { "cifar-10", 10 }, { "cifar-100", 100 }, { "caltech-101", 101 }, { "oxford-flower-102", 102 },
  { "food-101", 101 }, { "fgvc-aircraft-2013b-variants102", 100 }, { "eurosat_clip", 10 },
  { "resisc45_clip", 45 }, { "country211", 211 }, { "mnist", 10 }, { "stl10", 10 }, { "svhn", 10 },
  { "pcam", 2 }, { "rendered-sst2", 2 }, { "pets", 37 }, { "cars", 196 }, { "dtd", 47 },
  { "sun397", 397 }, { "gtsrb", 43 }, { "kitti-distance", 4 },
}
local quality = { baseline = P.q_baseline, large = P.q_large, huge = P.q_huge, team = P.q_team }

local function list(text)
  local out = {}
  for item in text:gmatch("[^,]+") do out[#out + 1] = item end
  return out
end

local classes = {}
for i, d in ipairs(elevater) do classes[d[1]] = { count = d[2], index = i } end
local datasets = {}
if P.datasets == "all" then
  for _, d in ipairs(elevater) do datasets[#datasets + 1] = d[1] end
else
  for _, d in ipairs(list(P.datasets)) do
    assert(classes[d], "unknown dataset " .. d .. " (see the ELEVATER list in zeroshot.lua)")
    datasets[#datasets + 1] = d
  end
end
local models = list(P.models)
local gpus = P.gpus >= 0 and P.gpus or (gpus_available() > 0 and 1 or 0)
local synthetic = P.data_src == "demo/elevater"
-- where a sync step runs: on the host that holds its source, else here (its source is local)
local function at(host)
  if host ~= "" then return { host = host } end
  return { executor = "local" }
end
local data_at, ckpt_at = at(P.data_host), at(P.ckpt_host)

-- 0. synthetic sources (only for the default data_src / ckpt_src)
local source_tasks = {}
if synthetic then
  for c in grid { dataset = datasets, model = models } do
    local q = quality[c.model]
    assert(q, "no synthetic quality for model " .. c.model .. ": give data_src for real features")
    local d = classes[c.dataset]
    -- some datasets are easier than others: a fixed per-dataset shift
    local shift = ((d.index * 37) % 21 - 10) / 100
    local name = "source/" .. c.dataset .. "/" .. c.model
    source_tasks[c.dataset] = source_tasks[c.dataset] or {}
    table.insert(source_tasks[c.dataset], name)
    local dir = P.data_src .. "/" .. c.dataset .. "/" .. c.model
    task {
      name = name, host = data_at.host,
      outputs = { dir .. "/images.npy", dir .. "/text.npy", dir .. "/labels.npy" },
      run = { "kiln-kernels", "synth", "--classes", d.count, "--dim", P.dim, "--samples", P.samples,
              "--seed", d.index + 4294967296 * (#c.model + string.byte(c.model)),
              "--quality", string.format("%.3f", math.max(0.05, math.min(0.95, q + shift))),
              "--out", dir },
    }
  end
end
if P.ckpt_src == "demo/checkpoints" then
  for _, m in ipairs(models) do
    task {
      name = "source/checkpoint/" .. m, host = ckpt_at.host,
      outputs = { P.ckpt_src .. "/" .. m .. ".ckpt" },
      run = "printf 'distilled Chinese-CLIP (%s), synthetic quality %s\\n' " .. m .. " " ..
            tostring(quality[m]) .. " > {out}",
    }
  end
end

-- 1. data sync: rsync skips files already identical at the destination
for _, d in ipairs(datasets) do
  task {
    name = "data/" .. d, host = data_at.host, executor = data_at.executor,
    deps = source_tasks[d],
    outputs = { "work/data/" .. d },
    run = { "rsync", "-a", "--delete", P.data_src .. "/" .. d .. "/", "work/data/" .. d .. "/" },
    retries = 2, timeout = "2h",
  }
end

-- 2. model sync
for _, m in ipairs(models) do
  task {
    name = "model/" .. m, host = ckpt_at.host, executor = ckpt_at.executor,
    deps = P.ckpt_src == "demo/checkpoints" and { "source/checkpoint/" .. m } or nil,
    outputs = { "work/models/" .. m .. ".ckpt" },
    run = { "rsync", "-a", P.ckpt_src .. "/" .. m .. ".ckpt", "work/models/" .. m .. ".ckpt" },
    retries = 2, timeout = "2h",
  }
end

-- 3. eval: one task per (dataset, model). Its inputs are exactly the files it reads, inside
-- the synced dataset folder, so new features for one model re-run only that model's evals.
local evals = {}
for c in grid { dataset = datasets, model = models } do
  evals[#evals + 1] = "eval/" .. c.dataset .. "/" .. c.model
  local dir = "work/data/" .. c.dataset .. "/" .. c.model
  task {
    name = "eval/" .. c.dataset .. "/" .. c.model,
    inputs = { dir .. "/images.npy", dir .. "/text.npy", dir .. "/labels.npy",
               "work/models/" .. c.model .. ".ckpt" },
    outputs = { "results/" .. c.dataset .. "/" .. c.model .. ".json" },
    run = { "kiln-kernels", "zeroshot", "--images", dir .. "/images.npy", "--text", dir .. "/text.npy",
            "--labels", dir .. "/labels.npy", "--batch", P.batch, "--out", "{out}" },
    gpus = gpus, timeout = "6h", retries = 1,
    metrics = "{out}",
    tags = { dataset = c.dataset, model = c.model },
  }
end

-- 4. analysis: the dataset x model table of top-1 accuracy with each model's mean
task {
  name = "analysis/top1-table",
  deps = evals,
  outputs = { "results/top1_table.md" },
  run = { "@kiln", "metrics", "eval/*", "--rows", "dataset", "--cols", "model", "--value", "top1",
          "--format", "md", "--mean", "--out", "{out}" },
}

-- 5. charts, rendered by gnuplot from the recorded metrics
plot { name = "top1_by_dataset", type = "bars", from = "eval/*", x = "dataset", series = "model", y = "top1",
       title = "Zero-shot top-1 accuracy on the ELEVATER datasets", xlabel = "dataset", ylabel = "top-1 accuracy",
       best = "max" }  -- its table (plots/top1_by_dataset.tex, the report) sets each dataset's best model bold
plot { name = "top1_heatmap", type = "heatmap", from = "eval/*", x = "model", series = "dataset", y = "top1",
       title = "Top-1 accuracy, dataset x model", unit = "top-1 accuracy" }
plot { name = "mean_top1", type = "bars", from = "eval/*", x = "model", y = "top1",
       title = "Mean top-1 accuracy per model over the datasets", xlabel = "model", ylabel = "mean top-1 accuracy",
       best = "max" }
