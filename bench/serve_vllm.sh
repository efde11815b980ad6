#!/usr/bin/env bash
# The planner on vLLM's OpenAI-compatible server: the command line Banana needs.
#
#   bench/serve_vllm.sh MODEL_DIR [PORT] [ADAPTER_DIR]
#
# MODEL_DIR is a safetensors folder (vLLM does not serve the packaged GGUF well):
# `python -c "from banana.agent.planner.model import base_model_dir; print(base_model_dir())"`
# makes it. The base is served as `smollm2-135m-instruct` (the json surface); with
# ADAPTER_DIR (agent/planner/adapter) the planner LoRA is served as `banana-planner`
# (the steps surface; BANANA_PLANNER_MODEL defaults to that name).
# BANANA_VLLM_CPU=1 adds the settings for a CPU machine (eager mode, a 1 GiB KV cache,
# one unbound OpenMP thread); on a GPU box leave it unset. VLLM_PYTHON picks the
# interpreter that has vLLM (default: .venv-vllm/bin/python, else python3).
set -euo pipefail
model=${1:?usage: $0 MODEL_DIR [PORT] [ADAPTER_DIR]}
port=${2:-8000}
adapter=${3:-}
py=${VLLM_PYTHON:-$( [ -x .venv-vllm/bin/python ] && echo .venv-vllm/bin/python || echo python3 )}

args=(--model "$model" --served-model-name smollm2-135m-instruct --host 127.0.0.1 --port "$port"
      --max-model-len 4096 --generation-config vllm)
if [ -n "$adapter" ]; then
    rank=$(sed -n 's/.*"r": *\([0-9]*\).*/\1/p' "$adapter/adapter_config.json" | head -1)
    max_rank=8
    while [ "$max_rank" -lt "${rank:-8}" ]; do max_rank=$((max_rank * 2)); done
    args+=(--enable-lora --max-lora-rank "$max_rank" --lora-modules "banana-planner=$adapter")
fi
if [ "${BANANA_VLLM_CPU:-0}" = 1 ]; then
    export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1} VLLM_CPU_OMP_THREADS_BIND=${VLLM_CPU_OMP_THREADS_BIND:-nobind}
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} VLLM_TARGET_DEVICE=cpu
    args+=(--enforce-eager --dtype bfloat16 --max-num-seqs 4)
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1
exec "$py" -m vllm.entrypoints.openai.api_server "${args[@]}"
