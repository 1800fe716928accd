#!/usr/bin/env bash
# Drift check: does a brand-new user get a working sedkit today?
#   bash tools/check_fresh_install.sh            # prints the record; --write also updates docs/install.md
# Clones the committed HEAD into a temporary folder, runs the README's first step there
# (tools/install.sh: a fresh .venv from requirements.lock), then `sedkit doctor`, a one-epoch run of
# the baseline recipe on the tiny synthesized benchmark, and the README's test command is left to CI.
# The record (date, durations, versions) is what docs/install.md quotes.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
git clone --quiet "$REPO" "$WORK/sedkit"
cd "$WORK/sedkit"

t0=$(date +%s)
bash tools/install.sh >"$WORK/install.log" 2>&1 || { cat "$WORK/install.log"; exit 1; }
t1=$(date +%s)
.venv/bin/sedkit doctor >"$WORK/doctor.log" 2>&1 || { cat "$WORK/doctor.log"; exit 1; }
.venv/bin/sedkit run recipes/dcase2019_task4/baseline.yaml \
    data.params.root="$WORK/data" data.params.synth_preset=tiny \
    data.params.batches_per_epoch=4 trainer.max_epochs=1 run.root="$WORK/runs" \
    >"$WORK/run.log" 2>&1 || { cat "$WORK/run.log"; exit 1; }
t2=$(date +%s)

record="$WORK/record.md"
{
    echo "Last run: $(date -u '+%Y-%m-%d %H:%M UTC') on $(uname -m), $(nproc) cores, commit $(git rev-parse --short HEAD)."
    echo
    echo "- \`bash tools/install.sh\` in a fresh clone (new .venv): $((t1 - t0)) s"
    echo "- \`sedkit doctor\` + one-epoch tiny run (synthesis included): $((t2 - t1)) s"
    echo "- pip freeze of the new venv: $(.venv/bin/python -m pip freeze --exclude-editable | wc -l) packages, sha256 $(.venv/bin/python -m pip freeze --exclude-editable | sha256sum | cut -c1-16)"
    echo
    echo '```'
    cat "$WORK/doctor.log"
    grep -E "event_f1_macro|segment_f1_macro|psds1" "$WORK/run.log" | head -3
    echo '```'
} >"$record"
cat "$record"
if [ "${1:-}" = "--write" ]; then
    python3 - "$REPO/docs/install.md" "$record" <<'PY'
import sys
from pathlib import Path
doc, record = Path(sys.argv[1]), Path(sys.argv[2]).read_text()
start, end = "<!-- fresh-install:start -->", "<!-- fresh-install:end -->"
text = doc.read_text()
head, _, rest = text.partition(start)
_, _, tail = rest.partition(end)
doc.write_text(f"{head}{start}\n{record}{end}{tail}")
PY
    echo "docs/install.md updated"
fi
