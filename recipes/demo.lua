-- demo.lua — a small experiment grid that needs no GPU and no downloads: generate a
-- noisy dataset, fit a line by gradient descent for every (learning rate, steps) pair,
-- and collect the final losses into one Markdown table.
-- Run: kiln -C build/demo run recipes/demo.lua      (then: kiln -C build/demo run lr_list=0.5,0.2)

local P = params { points = 400, noise = 0.5, lr_list = "0.3,0.1,0.03", steps_list = "50,200" }

local function split(text)
  local out = {}
  for item in text:gmatch("[^,]+") do out[#out + 1] = tonumber(item) end
  return out
end

-- 1. data: y = 3x + 1 plus noise, deterministic (fixed seed)
task {
  name = "data/points",
  outputs = { "data/points.tsv" },
  run = { "awk", "-v", "n=" .. P.points, "-v", "noise=" .. P.noise, "-v", "out={out}",
          "BEGIN { srand(7); for (i = 0; i < n; i++) { x = rand() * 4 - 2; " ..
          "printf \"%.5f\\t%.5f\\n\", x, 3 * x + 1 + noise * (rand() - 0.5) > out } }" },
}

-- 2. one training run per grid cell; each writes a small JSON result
local results = {}
for c in grid { lr = split(P.lr_list), steps = split(P.steps_list) } do
  local name = string.format("fit/lr=%s/steps=%d", c.lr, c.steps)
  local t = task {
    name = name,
    inputs = { "data/points.tsv" },
    outputs = { string.format("results/fit-lr%s-steps%d.json", c.lr, c.steps) },
    run = { "awk", "-v", "lr=" .. c.lr, "-v", "steps=" .. c.steps, "-v", "out={out}",
            "{ x[NR] = $1; y[NR] = $2 } END { w = 0; b = 0; " ..
            "for (s = 0; s < steps; s++) { gw = 0; gb = 0; " ..
            "for (i = 1; i <= NR; i++) { e = w * x[i] + b - y[i]; gw += e * x[i]; gb += e } " ..
            "w -= lr * gw / NR; b -= lr * gb / NR } " ..
            "loss = 0; for (i = 1; i <= NR; i++) { e = w * x[i] + b - y[i]; loss += e * e } " ..
            "printf \"{\\\"lr\\\": %s, \\\"steps\\\": %d, \\\"w\\\": %.4f, \\\"b\\\": %.4f, \\\"mse\\\": %.5f}\\n\", " ..
            "lr, steps, w, b, loss / NR > out }",
            "{in}" },
    tags = c,
  }
  results[#results + 1] = t.outputs[1]
end

-- 3. the comparison table a report would show
task {
  name = "report/table",
  inputs = results,  -- outputs of the fits: kiln adds the edges
  outputs = { "results/summary.md" },
  run = "{ echo '| lr | steps | w | b | mse |'; echo '|---|---|---|---|---|'; " ..
        "cat {inputs} | sed 's/[{}\",]//g' | " ..
        "awk '{ printf \"| %s | %s | %s | %s | %s |\\n\", $2, $4, $6, $8, $10 }' | sort -t'|' -k6 -g; } > {out}",
}
