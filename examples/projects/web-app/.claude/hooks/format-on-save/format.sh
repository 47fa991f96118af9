#!/bin/sh
case "$1" in
  *.py) ruff format "$1" ;;
  *.ts|*.tsx|*.css|*.json) npx prettier --write "$1" ;;
esac
