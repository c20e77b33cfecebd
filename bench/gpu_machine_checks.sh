#!/bin/bash
# Two checks on a lent GPU machine (bench/gpu.json): a batch-1 epoch with XLA's command buffers (CUDA
# graphs) over while loops vs the default flags, and Hyperband (the tune stage) alone, 185 s at most.
#
# That machine has Python 3.12 and its own JAX (CUDA 13), but no registry, no DVC and no git. Before the
# call, here in the checkout (.gpu/ and .whl/ listed in .git/info/exclude, both carried):
#   python -m bench.gpu plan --out .gpu/plan.json --set seeds_together=true --set data.fashion_mnist_dir=.gpu/fashion-mnist
#   cp -r /usr/share/datasets/fashion-mnist .gpu/
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#     keras==3.15.1 namex==0.1.0 optree==0.20.0 keras-tuner==1.4.8 kt-legacy==1.0.5 mlxtend==0.25.0 dvclive==3.49.1 dvc==3.67.1 dvc-render==1.0.2 dvc-studio-client==0.23.0 funcy==2.1 ruamel.yaml==0.19.1 flatten-dict==0.5.0 voluptuous==0.16.0 scmrepo==3.6.2 pygtrie==2.6.2 dulwich==1.2.21 dvc-http==2.32.0 dvc-objects==5.2.0 dvc-data==3.18.3 sqltrie==0.11.3 diskcache==5.6.3 dpath==2.2.0 flufl.lock==9.2.0 atpublic==9.0.0 zc.lockfile==4.0 platformdirs==4.14.7 configobj==5.0.9
# (what DVCLive and keras-tuner import there and the image lacks; DVC is imported by DVCLive, not run).
# Then: TUNE_LIMIT=185 bash bench/gpu_machine_checks.sh, with $OUT a folder for the figures.
set -u
T0=$(date +%s)
el() { echo $(( $(date +%s) - T0 )); }
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site
if ! command -v python >/dev/null; then
  mkdir -p /tmp/bin; printf '#!/bin/sh\nexec %s "$@"\n' "$(command -v python3)" > /tmp/bin/python; chmod +x /tmp/bin/python
  export PATH=/tmp/bin:$PATH
fi
export XLA_PYTHON_CLIENT_PREALLOCATE=false NNSTUDY_COMMIT=$(python3 -c "import json; print(json.load(open('${PLAN:-.gpu/plan.json}'))['commit'])")
python -m bench.gpu params ${PLAN:-.gpu/plan.json} && python -m stages.fetch && python -m stages.prepare && python -m stages.settings || exit 1
echo "== data at $(el) s"
i=0
for flags in "" "--xla_gpu_enable_command_buffer=FUSION,CUBLAS,CUBLASLT,CUSTOM_CALL,CUDNN,WHILE,CONDITIONAL --xla_gpu_graph_min_graph_size=1"; do
  i=$((i+1)); echo "== XLA_FLAGS='$flags' at $(el) s"
  XLA_FLAGS="$flags" timeout 50 python -m bench.vmap_seeds --datasets fashion-mnist --variants batch_online --epochs 2 --repeats 1 --output $OUT/vmap_flags_$i.json 2>&1 | grep -v "^WARNING" | tail -8
done
echo "== tune alone from $(el) s"
S=$(date +%s.%N)
timeout ${TUNE_LIMIT:-190} python -m stages.tune > /tmp/tune.log 2>&1; echo "tune rc=$? after $(python3 -c "import time; print(round(time.time()-$S,1))") s"
tail -5 /tmp/tune.log
{ echo "start $S"; for f in tuner/trial_*/trial.json; do [ -f "$f" ] && echo "$(stat -c %Y "$f") $(python3 -c "import json,sys; t=json.load(open('$f')); print(t.get('status'), t['hyperparameters']['values'].get('tuner/epochs'))") $f"; done; } > $OUT/tune_trials.txt 2>&1
grep -c COMPLETED $OUT/tune_trials.txt; cp /tmp/tune.log $OUT/
echo "== all done at $(el) s"
