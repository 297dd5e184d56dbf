# Kaldi-style option parsing, sourced by run.sh and shell steps after they set their defaults.
#   --foo-bar value  or  --foo-bar=value  sets the shell variable foo_bar, which must already
#   exist (an unknown option is an error, never ignored); --config FILE sources FILE first;
#   --help prints $help_message. Parsing stops at the first argument that is not an option,
#   and the rest is left in "$@".
while true; do
  [ $# -eq 0 ] && break
  case "$1" in
    --help|-h)
      if [ -n "${help_message:-}" ]; then printf '%s\n' "$help_message" >&2; fi
      exit 0 ;;
    --config=*|--config)
      if [[ "$1" == *=* ]]; then _po_file="${1#*=}"; shift; else _po_file="${2:-}"; shift 2 || { echo "$0: --config needs a file" >&2; exit 1; }; fi
      [ -f "$_po_file" ] || { echo "$0: config file '$_po_file' not found" >&2; exit 1; }
      # shellcheck disable=SC1090
      . "$_po_file" ;;
    --*=*)
      _po_name="${1%%=*}"; _po_name="${_po_name#--}"; _po_var="${_po_name//-/_}"
      _po_value="${1#*=}"; shift ;;
    --*)
      _po_name="${1#--}"; _po_var="${_po_name//-/_}"
      [ $# -ge 2 ] || { echo "$0: option --$_po_name needs a value" >&2; exit 1; }
      _po_value="$2"; shift 2 ;;
    *) break ;;
  esac
  if [ -n "${_po_var:-}" ]; then
    if [[ ! "$_po_var" =~ ^[a-zA-Z_][a-zA-Z0-9_]*$ ]] || [ -z "${!_po_var+set}" ]; then
      echo "$0: unknown option --$_po_name (see --help)" >&2; exit 1
    fi
    _po_old="${!_po_var}"
    if [ "$_po_old" = "true" ] || [ "$_po_old" = "false" ]; then
      case "$_po_value" in
        true|false) ;;
        *) echo "$0: option --$_po_name takes true or false, not '$_po_value'" >&2; exit 1 ;;
      esac
    fi
    printf -v "$_po_var" '%s' "$_po_value"
    unset _po_var
  fi
done
true
