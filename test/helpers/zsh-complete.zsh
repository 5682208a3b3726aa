# Drives zsh's own completion system in a pseudo-terminal and prints what it offers.
#   zsh -f zsh-complete.zsh FPATH_DIR 'line 1' ['line 2' …]
# For each line: `<<LINE>>line`, then one `<<HIT>>candidate` per candidate offered at its end.
# An interactive `zsh -f -i` runs under zpty with FPATH_DIR first in $fpath and compinit loaded;
# compadd is wrapped so every match that completion adds is printed, and TAB is bound to a widget
# that completes, prints an end marker and clears the line.
zmodload zsh/zpty || exit 2
dir=$1
shift
zpty z 'TERM=dumb zsh -f -i' || exit 2
# Markers are split in the commands sent, so the echo of a command never looks like its output.
zpty -w z 'PS1=; RPS1=; unsetopt zle_bracketed_paste auto_list auto_menu list_ambiguous beep'
zpty -w z "fpath=(${(q)dir} \$fpath); autoload -Uz compinit; compinit -u -D"
zpty -w z 'compadd() {
  if (( ${@[(I)-[OAD]*]} )); then builtin compadd "$@"; return; fi
  local -a __hits; builtin compadd -O __hits "$@"
  local h; for h in $__hits; do print -r -- "<<H""IT>>$h"; done
  builtin compadd "$@"
}'
zpty -w z '_bc_tab() { zle complete-word; print -r -- "<<DO""NE>>"; BUFFER=; }; zle -N _bc_tab; bindkey "^I" _bc_tab'
zpty -w z 'print READY""_OK'
zpty -r z out '*READY_OK*' || exit 2
for line in "$@"; do
  print -r -- "<<LINE>>$line"
  zpty -n -w z "$line"$'\t'
  zpty -r z out '*<<DONE>>*' || exit 2
  for l in ${(f)out//$'\r'/}; do
    [[ $l == *'<<HIT>>'* ]] && print -r -- "<<HIT>>${l#*<<HIT>>}"
  done
done
zpty -d z
