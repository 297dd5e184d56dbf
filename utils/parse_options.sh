# Kaldi-style option parsing, sourced by run.sh and shell steps after they set their defaults.
#   --foo-bar value  or  --foo-bar=value  sets the shell variable foo_bar, which must be named in
#   $known_options (the caller's documented options: any other variable, PATH or a helper of the
#   script, is an unknown option, never set); --config FILE reads FILE as data, one
#   --option=value per line with # comments (the project's conf format; never run as shell),
#   later files winning and the command line winning over every file; --help prints
#   $help_message, then each option with its default and the comment on the line of the
#   calling script that sets that default (NAME=VALUE  # comment). Parsing stops at the first argument that is not an option, and the rest is
#   left in "$@".

# _po_set NAME VALUE WHERE: set option NAME (without --) to VALUE; WHERE names the source in errors.
_po_set() {
  local name=$1 value=$2 where=$3 var old
  var=${name//-/_}
  if [[ ! " $known_options " == *" $var "* ]]; then
    echo "$0: $where: unknown option --$name (see --help)" >&2; exit 1
  fi
  old=${!var}
  if [ "$old" = "true" ] || [ "$old" = "false" ]; then
    case "$value" in
      true|false) ;;
      *) echo "$0: $where: option --$name takes true or false, not '$value'" >&2; exit 1 ;;
    esac
  fi
  printf -v "$var" '%s' "$value"
}

# _po_read_conf FILE: the options of a conf file, except those the command line set.
_po_read_conf() {
  local file=$1 lineno=0 raw line
  [ -f "$file" ] || { echo "$0: config file '$file' not found" >&2; exit 1; }
  while IFS= read -r raw || [ -n "$raw" ]; do
    lineno=$((lineno + 1))
    [ $lineno -eq 1 ] && raw=${raw#$'\xef\xbb\xbf'}  # an editor's byte-order mark
    line=${raw%%#*}
    line=${line#"${line%%[![:space:]]*}"}
    line=${line%"${line##*[![:space:]]}"}
    [ -n "$line" ] || continue
    case "$line" in
      --config=*) echo "$0: $file:$lineno: --config cannot be nested inside a conf file; pass both files" >&2; exit 1 ;;
      --?*=*) ;;
      *) echo "$0: $file:$lineno: expected '--option=value', got '$line'" >&2; exit 1 ;;
    esac
    _po_name=${line%%=*}; _po_name=${_po_name#--}
    [[ " $_po_from_cli " == *" ${_po_name//-/_} "* ]] || _po_set "$_po_name" "${line#*=}" "$file:$lineno"
  done < "$file"
}

# _po_help: $help_message, then every known option with its default and what its line says.
_po_help() {
  local var note
  if [ -n "${help_message:-}" ]; then printf '%s\n' "$help_message"; fi
  echo "Options (--name=value or --name value; default after '='):"
  for var in $known_options; do
    note=$(sed -n "s/^${var}=[^#]*#[[:space:]]*//p" "$0" | head -n 1)
    printf '  %-24s %s\n' "--${var//_/-}=${!var}" "$note"
  done
}

_po_confs=()
_po_from_cli=""
while true; do
  [ $# -eq 0 ] && break
  case "$1" in
    --help|-h) _po_help >&2; exit 0 ;;
    --config=*) _po_confs+=("${1#*=}"); shift ;;
    --config)
      [ $# -ge 2 ] || { echo "$0: --config needs a file" >&2; exit 1; }
      _po_confs+=("$2"); shift 2 ;;
    --*=*)
      _po_name="${1%%=*}"; _po_name="${_po_name#--}"
      _po_set "$_po_name" "${1#*=}" "command line"; _po_from_cli+=" ${_po_name//-/_}"; shift ;;
    --*)
      _po_name="${1#--}"
      [ $# -ge 2 ] || { echo "$0: option --$_po_name needs a value" >&2; exit 1; }
      _po_set "$_po_name" "$2" "command line"; _po_from_cli+=" ${_po_name//-/_}"; shift 2 ;;
    *) break ;;
  esac
done
for _po_file in ${_po_confs[@]+"${_po_confs[@]}"}; do
  _po_read_conf "$_po_file"
done
true
