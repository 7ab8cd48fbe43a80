#!/bin/sh
# dcv-idle-signals.sh: what a DCV host says about its use, as ONE compact JSON line on stdout.
# Shipped by dcv-session-resolver; run on the host by SSM Run Command (AWS-RunShellScript runs it with sh,
# dash on Ubuntu), so POSIX sh only: no bash, no jq, no python. Nothing is installed on the host.
#
# Output (version 1):
#   {"v":1,"sessions":[{"id":"console","num-of-connections":0,"creation-time":"2026-03-02T16:12:58.262224Z",
#     "last-disconnection-time":""}],"gpu":[3,0],"errors":[]}
# - sessions: from `dcv list-sessions -j` then `dcv describe-session ID -j`; null when dcv is missing, or
#   list-sessions fails or cannot be read. A session whose description cannot be read is left out and
#   named in errors.
# - gpu: `nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits`, one percentage per GPU;
#   null without nvidia-smi (or when it fails: then an error says so).
# - errors: fixed words plus session ids and exit codes, never free text, so the line is always valid JSON.
# Any error makes the product read the host as "unknown", which is never stopped.

LC_ALL=C
export LC_ALL
# No globbing: words taken from command output are data, never patterns.
set -f

errors=""
add_error() {
  if [ -z "$errors" ]; then errors="\"$1\""; else errors="$errors,\"$1\""; fi
}

# A stuck command must not hold the SSM command until its own timeout: bound each one when timeout exists.
run() {
  if command -v timeout >/dev/null 2>&1; then timeout 20 "$@"; else "$@"; fi
}

# Session ids we pass back to dcv and print in JSON unescaped: anything else is reported, not used.
safe_id() {
  case "$1" in
    "" | *[!A-Za-z0-9._:@+-]*) return 1 ;;
    *) return 0 ;;
  esac
}

# JSON split at , { } [ ] into one member per line (values we read never contain those characters).
members() {
  printf '%s\n' "$1" | tr '\n\r\t' '   ' | tr ',{}[]' '\n\n\n\n\n'
}

# The value of a key that must occur exactly once, as written (a string keeps its quotes).
field() {
  count=$(members "$1" | grep -c "^[[:space:]]*\"$2\"[[:space:]]*:")
  [ "$count" = 1 ] || return 1
  members "$1" | sed -n "s/^[[:space:]]*\"$2\"[[:space:]]*:[[:space:]]*\\(.*[^[:space:]]\\)[[:space:]]*\$/\\1/p"
}

describe() {
  id=$1
  if ! safe_id "$id"; then
    add_error "session-id-unsupported"
    return
  fi
  described=$(run dcv describe-session "$id" -j 2>/dev/null)
  status=$?
  if [ "$status" -ne 0 ]; then
    add_error "describe-session-failed:$id:exit-$status"
    return
  fi
  connections=$(field "$described" "num-of-connections")
  created=$(field "$described" "creation-time")
  disconnected=$(field "$described" "last-disconnection-time")
  case "$connections" in
    "" | *[!0-9]*) add_error "describe-session-unreadable:$id:num-of-connections"; return ;;
  esac
  case "$created" in
    '""' | '"'*[!0-9T:.Z+-]*'"' | [!'"']* | *[!'"'] | "") add_error "describe-session-unreadable:$id:creation-time"; return ;;
  esac
  case "$disconnected" in
    '"'*[!0-9T:.Z+-]*'"' | [!'"']* | *[!'"'] | "") add_error "describe-session-unreadable:$id:last-disconnection-time"; return ;;
  esac
  entry="{\"id\":\"$id\",\"num-of-connections\":$connections,\"creation-time\":$created,\"last-disconnection-time\":$disconnected}"
  if [ -z "$entries" ]; then entries="$entry"; else entries="$entries,$entry"; fi
}

sessions="null"
if ! command -v dcv >/dev/null 2>&1; then
  add_error "dcv-missing"
else
  list=$(run dcv list-sessions -j 2>/dev/null)
  status=$?
  if [ "$status" -ne 0 ]; then
    add_error "list-sessions-failed:exit-$status"
  else
    flat=$(printf '%s\n' "$list" | tr '\n\r\t' '   ')
    keys=$(members "$flat" | grep -c '^[[:space:]]*"id"[[:space:]]*:')
    ids=$(members "$flat" | sed -n 's/^[[:space:]]*"id"[[:space:]]*:[[:space:]]*"\([^"]*\)"[[:space:]]*$/\1/p')
    found=0
    if [ -n "$ids" ]; then found=$(printf '%s\n' "$ids" | grep -c ''); fi
    objects=$(printf '%s' "$flat" | tr -cd '{' | wc -c | tr -d ' ')
    # Every session must be seen: not a JSON list, an id we could not read, or an object without one make
    # the list unreadable (a connected session left out would make a busy host look idle).
    case "$flat" in
      *'['*']'*) listed=1 ;;
      *) listed="" ;;
    esac
    if [ -z "$listed" ] || [ "$found" -ne "$keys" ] || [ "$objects" -gt "$keys" ]; then
      add_error "list-sessions-unreadable"
    else
      entries=""
      while IFS= read -r id; do
        if [ -n "$id" ]; then describe "$id"; fi
      done <<EOF
$ids
EOF
      sessions="[$entries]"
    fi
  fi
fi

gpu="null"
if command -v nvidia-smi >/dev/null 2>&1; then
  readings=$(run nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits 2>/dev/null)
  status=$?
  if [ "$status" -ne 0 ]; then
    add_error "nvidia-smi-failed:exit-$status"
  else
    values=""
    bad=""
    for reading in $(printf '%s\n' "$readings" | tr -d ' \r'); do
      case "$reading" in
        *[!0-9]*) bad=1 ;;
        *) values="${values:+$values,}$reading" ;;
      esac
    done
    if [ -n "$bad" ] || [ -z "$values" ]; then add_error "nvidia-smi-unreadable"; else gpu="[$values]"; fi
  fi
fi

printf '{"v":1,"sessions":%s,"gpu":%s,"errors":[%s]}\n' "$sessions" "$gpu" "$errors"
