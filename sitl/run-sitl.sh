#!/usr/bin/env bash
# Start ArduCopter SITL by hand, the way the tests start it:
#   sitl/run-sitl.sh /path/to/ardupilot/build/sitl/bin/arducopter [--speedup 1] [--instance 0] [--workdir DIR]
# It prints the MAVLink URL (tcp:127.0.0.1:5760 for instance 0); then e.g.
#   .venv/bin/agridrone status --connect tcp:127.0.0.1:5760
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-$here/../.venv/bin/python}"
[ -x "$python" ] || python=python3
binary="${1:-${AGRIDRONE_SITL:-}}"
if [ -z "$binary" ]; then
  echo "usage: $0 /path/to/arducopter [--speedup N] [--instance N] [--workdir DIR] [--home LAT,LON,ALT,HDG]" >&2
  exit 2
fi
[ $# -gt 0 ] && shift
cd "$here/.."
exec "$python" -m agridrone.sim.sitl "$binary" --defaults "$here/agridrone.parm" "$@"
