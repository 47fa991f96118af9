#!/bin/sh
set -e
sqlfluff lint --dialect postgres sql/
ruff check --fix .
