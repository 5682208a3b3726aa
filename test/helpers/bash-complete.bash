# Calls a bash completion function as readline would, once per case read from stdin.
#   bash --norc --noprofile bash-complete.bash SCRIPT DIR < cases
# SCRIPT is the completion script to source; DIR the working directory. Each input line is one
# case: the words typed so far (the last one is being completed) separated by \x1f, then \x1fEND
# (a sentinel that keeps an empty last word). Each output line is what the function registered
# for the first word (`complete -p`) put in COMPREPLY, separated by \x1f, or <<unregistered>>.
source "$1" || exit 2
cd "$2" || exit 2
declare -A functions=()
while IFS=$'\x1f' read -r -a words; do
  unset 'words[-1]'
  if [[ -z ${functions[${words[0]}]} ]]; then
    spec=$(complete -p "${words[0]}" 2>/dev/null)
    fn=${spec##*-F }
    functions[${words[0]}]=${fn%% *}
  fi
  fn=${functions[${words[0]}]}
  if [[ -z $fn ]]; then echo '<<unregistered>>'; continue; fi
  COMP_WORDS=("${words[@]}")
  COMP_CWORD=$((${#words[@]} - 1))
  COMP_LINE="${words[*]}"
  COMP_POINT=${#COMP_LINE}
  COMPREPLY=()
  "$fn" "${words[0]}" "${words[COMP_CWORD]}" "${words[COMP_CWORD-1]}"
  IFS=$'\x1f' eval 'echo "${COMPREPLY[*]}"'
done
