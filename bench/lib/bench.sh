# Shell helpers shared by the scripts in bench/: a scratch directory on a
# real disk, starting chatd and waiting until it serves, cleaning up, and
# reading wrk's output. POSIX sh; source it after setting `top` (the
# checkout) with `. "$top/bench/lib/bench.sh"`.
#
# Everything a script starts goes into bench_pids, and bench_cleanup (the
# EXIT trap) stops exactly those and removes the scratch directory, so a
# failed or interrupted run leaves nothing behind (BENCH_KEEP=1 keeps the
# directory, with the logs and wrk outputs, for a look afterwards).

bench_pids=
bench_tmp=
bench_id=	# which chatd binary, and where the data lives: print it with results

# bench_init NAME: makes the scratch directory $bench_tmp under
# $BENCH_TMPDIR (default /var/tmp) and sets the traps. Refuses a tmpfs:
# fsync there costs nothing, which would make ack = fsync look free.
bench_init() {
	bench_tmp=$(mktemp -d "${BENCH_TMPDIR:-/var/tmp}/$1.XXXXXX")
	trap bench_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	fstype=$(findmnt -n -o FSTYPE -T "$bench_tmp")
	case $fstype in
	tmpfs|ramfs)
		echo "$0: $bench_tmp is on $fstype, where fsync is free;" \
			"set BENCH_TMPDIR to a directory on a disk" >&2
		exit 1 ;;
	esac
	# Run a copy: others rebuild build/chatd while a run goes on, and one
	# run must measure one binary.
	bench_bin=${CHATD:-$top/build/chatd}
	mkdir "$bench_tmp/bin"
	cp "$bench_bin" "$bench_tmp/bin/chatd"
	bench_id="$("$bench_tmp/bin/chatd" -V) ($bench_bin built $(date -u -r "$bench_bin" +%FT%TZ),"
	bench_id="$bench_id md5 $(md5sum <"$bench_tmp/bin/chatd" | cut -c1-12));"
	bench_id="$bench_id data on $fstype $(findmnt -n -o SOURCE -T "$bench_tmp")"
}

bench_cleanup() {
	for p in $bench_pids; do kill "$p" 2>/dev/null || true; done
	for p in $bench_pids; do wait "$p" 2>/dev/null || true; done
	if [ -n "$bench_tmp" ] && [ -z "${BENCH_KEEP:-}" ]; then rm -rf "$bench_tmp"; fi
	if [ -n "${BENCH_KEEP:-}" ]; then echo "kept $bench_tmp" >&2; fi
}

# bench_track PID: have bench_cleanup stop PID.
bench_track() {
	bench_pids="$bench_pids $1"
}

# bench_wait_http URL PID LOG: waits (at most 15 s) until URL answers 200;
# fails, showing LOG, if PID dies first or time runs out.
bench_wait_http() {
	i=0
	while [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$1")" != 200 ]; do
		if ! kill -0 "$2" 2>/dev/null || [ $i -ge 300 ]; then
			echo "$0: $1 did not come up; its log:" >&2
			cat "$3" >&2
			exit 1
		fi
		i=$((i + 1))
		sleep 0.05
	done
}

# bench_chatd NAME PORT [LINE...]: starts (the copy of) build/chatd with $WORKERS (default
# 2) workers on 127.0.0.1:PORT, data in $bench_tmp/NAME, stdout and stderr
# in $bench_tmp/NAME.log; each LINE is appended to its config file (give
# section headers, e.g. "[journal]" "ack = fsync"). Returns once it serves.
# Call it directly, not in $(...), so the pid is tracked in this shell.
bench_chatd() {
	name=$1 port=$2
	shift 2
	{
		printf '[server]\nlisten = 127.0.0.1:%s\nworkers = %s\n' "$port" "${WORKERS:-2}"
		printf 'data_dir = %s\nweb_root = %s\n' "$bench_tmp/$name" "$top/www"
		printf 'shutdown_timeout = 2s\n'
		for line in "$@"; do printf '%s\n' "$line"; done
	} >"$bench_tmp/$name.conf"
	"$bench_tmp/bin/chatd" -c "$bench_tmp/$name.conf" >"$bench_tmp/$name.log" 2>&1 &
	bench_track $!
	bench_wait_http "http://127.0.0.1:$port/healthz" $! "$bench_tmp/$name.log"
}

# bench_log_excerpt NAME: the lines of chatd's log NAME above info level
# (at most 20), on stderr, so odd behaviour is seen before the log is gone.
bench_log_excerpt() {
	odd=$(grep -v -F '] info: ' "$bench_tmp/$1.log" | head -n 20 || true)
	if [ -n "$odd" ]; then
		printf '\n%s log, lines above info:\n%s\n' "$1" "$odd" >&2
	fi
}

# Reading the output of one wrk run, saved in a file.
wrk_rps() { awk '/^Requests\/sec/ { print $2 }' "$1"; }
wrk_requests() { awk '/ requests in / { print $1 }' "$1"; }

# Non-2xx answers, socket errors (timeouts included), and their sum: a run
# with any is not a clean result.
wrk_non2xx() { awk '/Non-2xx or 3xx responses/ { n += $NF } END { print n + 0 }' "$1"; }
wrk_sockerr() {
	awk '/Socket errors/ { gsub(",", ""); n += $4 + $6 + $8 + $10 } END { print n + 0 }' "$1"
}
wrk_bad() { echo $(($(wrk_non2xx "$1") + $(wrk_sockerr "$1"))); }

# wrk_pct FILE 99%: that percentile of the --latency distribution, in ms.
wrk_pct() {
	awk -v p="$2" '$1 == p {
		v = $2; u = $2
		sub(/[a-z]+$/, "", v); sub(/^[0-9.]+/, "", u)
		m = u == "us" ? 0.001 : u == "s" ? 1000 : u == "m" ? 60000 : 1
		printf "%.3f\n", v * m }' "$1"
}
