#!/bin/bash
# The full-size study on a lent GPU machine (bench/gpu.json), in one call: bench.gpu runs the study's
# stage commands (6 at a time, 400 s at most), then bench.vmap_seeds times seeds one by one vs together.
#
# That machine has Python 3.12 and its own JAX (CUDA 13), but no registry, no DVC and no git. Before the
# call, here in the checkout (.gpu/ and .whl/ listed in .git/info/exclude, both carried):
#   python -m bench.gpu plan --out .gpu/plan.json --set seeds_together=true --set data.fashion_mnist_dir=.gpu/fashion-mnist
#   cp -r /usr/share/datasets/fashion-mnist .gpu/
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#     keras==3.15.1 namex==0.1.0 optree==0.20.0 keras-tuner==1.4.8 kt-legacy==1.0.5 mlxtend==0.25.0 dvclive==3.49.1 dvc==3.67.1 dvc-render==1.0.2 dvc-studio-client==0.23.0 funcy==2.1 ruamel.yaml==0.19.1 flatten-dict==0.5.0 voluptuous==0.16.0 scmrepo==3.6.2 pygtrie==2.6.2 dulwich==1.2.21 dvc-http==2.32.0 dvc-objects==5.2.0 dvc-data==3.18.3 sqltrie==0.11.3 diskcache==5.6.3 dpath==2.2.0 flufl.lock==9.2.0 atpublic==9.0.0 zc.lockfile==4.0 platformdirs==4.14.7 configobj==5.0.9
# (what DVCLive and keras-tuner import there and the image lacks; DVC is imported by DVCLive, not run).
# Then: SLOTS=6 STUDY_DEADLINE=400 bash bench/gpu_machine.sh, with $OUT a folder for the figures.
set -u
T0=$(date +%s)
el() { echo $(( $(date +%s) - T0 )); }
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
PLAN=${PLAN:-.gpu/plan.json}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site
if ! command -v python >/dev/null; then
  mkdir -p /tmp/bin; printf '#!/bin/sh\nexec %s "$@"\n' "$(command -v python3)" > /tmp/bin/python; chmod +x /tmp/bin/python
  export PATH=/tmp/bin:$PATH
fi
export XLA_PYTHON_CLIENT_PREALLOCATE=false
export NNSTUDY_COMMIT=$(python3 -c "import json; print(json.load(open('$PLAN'))['commit'])")
{ nvidia-smi; nproc; free -g; python -c "import jax, keras; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__)";
  python -m pip list 2>/dev/null | grep -i -E "^(jax|jaxlib|jax-cuda13-plugin|numpy|scipy|pandas|scikit-learn|keras|keras-tuner|statsmodels|matplotlib|dvclive) "; } > $OUT/setup.txt 2>&1
cat $OUT/setup.txt
echo "== setup done at $(el) s"
(nvidia-smi dmon -s u -d 1 > /tmp/dmon.txt 2>&1 &) ; 
python -m bench.gpu run $PLAN --slots ${SLOTS:-6} --deadline ${STUDY_DEADLINE:-400} --out $OUT/gpu_study.json --logs /tmp/gpulogs
pkill -f "nvidia-smi dmon" 2>/dev/null
echo "== study done at $(el) s"
LEFT=$(( ${TOTAL:-565} - $(el) - 25 ))
if [ $LEFT -gt 40 ]; then
  timeout $LEFT python -m bench.vmap_seeds --datasets fashion-mnist --epochs 2 --repeats 2 --output $OUT/vmap_seeds_gpu.json
fi
echo "== vmap done at $(el) s"
cp /tmp/dmon.txt /tmp/gpulogs/ 2>/dev/null
tar czf $OUT/gpu_logs.tar.gz --exclude=results/weights --exclude=results/predictions /tmp/gpulogs results metrics params.yaml 2>/dev/null
ls -la $OUT; echo "== all done at $(el) s"
