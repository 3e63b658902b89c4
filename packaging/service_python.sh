#!/bin/sh
# Prints the Python that `make` builds .venv with: the service runs on the newest Django (6.1),
# which needs Python 3.12+, so 3.13, else 3.12, from PATH or a pyenv build. With neither, it
# falls back to python3.11 (one notice on stderr): the service then gets Django 5.2 LTS.

runs() { "$1" -c '' >/dev/null 2>&1; }  # pyenv's shims exist for versions it has not selected

pyenv_build() {  # the newest pyenv build of series $1, if pyenv has one
  command -v pyenv >/dev/null 2>&1 || return 1
  pattern="^$(echo "$1" | sed 's/\./\\./g')\.[0-9]+\$"
  newest=$(pyenv versions --bare 2>/dev/null | grep -E "$pattern" | sort -V | tail -n 1)
  [ -n "$newest" ] && echo "$(pyenv root)/versions/$newest/bin/python$1"
}

for series in 3.13 3.12; do
  for candidate in "python$series" "$(pyenv_build "$series")"; do
    if [ -n "$candidate" ] && runs "$candidate"; then
      command -v "$candidate"
      exit 0
    fi
  done
done
echo "make: no Python 3.13 or 3.12 found; using python3.11, so the service runs on Django 5.2 LTS" >&2
echo python3.11
