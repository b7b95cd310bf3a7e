#!/bin/sh
# A credential_process for tests/creds/test_creds.py; $1 picks the behaviour.
case "$1" in
  ok) printf '{"Version": 1, "AccessKeyId": "AKIDPROC", "SecretAccessKey": "PROCSECRET", "SessionToken": "PROCTOKEN", "Expiration": "2099-01-01T00:00:00Z"}\n' ;;
  fail) echo "credential helper: not logged in" >&2; exit 3 ;;
  badjson) echo "this is not json" ;;
  version2) printf '{"Version": 2, "AccessKeyId": "A", "SecretAccessKey": "PROCSECRET"}\n' ;;
  slow) sleep 30 ;;
  huge) printf '{"Version": 1, "AccessKeyId": "AKIDPROC", "SecretAccessKey": "PROCSECRET", "Pad": "'
        head -c 70000 /dev/zero | tr '\0' 'p'; printf '"}\n' ;;
esac
