#!/bin/sh
# Run by scripts/test-pi inside a Debian root booted by systemd-nspawn, as the
# oneshot unit mbuspico-check.service: checks the shipped unit (mbuspico.service)
# running on the simulated meter (mbuspico-meter.service), saves a setting
# through the settings page, writes PASS/FAIL lines to /root/systemd-check.txt
# and powers the container off.
out=/root/systemd-check.txt
port=8080
pass() { echo "PASS: $*" >> "$out"; }
fail() { echo "FAIL: $*" >> "$out"; }
: > "$out"
i=0
until curl -fsS -u admin:Check-Pa55 "http://127.0.0.1:$port/" 2>/dev/null | grep -q '"meterNumber": "1'; do
  i=$((i + 1)); [ $i -lt 90 ] || break; sleep 1
done
body=$(curl -fsS -u admin:Check-Pa55 "http://127.0.0.1:$port/" 2>&1)
fields=$(printf '%s\n' "$body" | grep -c '^"[A-Za-z0-9]*": ')
if [ "$fields" -eq 14 ]; then pass "GET / has the 14 fields after ${i} s: $(printf '%s' "$body" | tr -d '\n' | cut -c1-120)"
else fail "GET / gave: $body"; fi
answer=$(curl -sS -u admin:Check-Pa55 -H 'Content-Type: application/json' \
  -d '{"udp.interval": 7.5}' "http://127.0.0.1:$port/api/settings" 2>&1)
case $answer in *'"changed": ["udp.interval"]'*|*'"changed":["udp.interval"]'*) pass "POST /api/settings: $answer" ;; *) fail "POST /api/settings: $answer" ;; esac
if grep -q '^interval = 7.5' /etc/mbuspico/mbuspico.toml; then pass "saved in /etc/mbuspico/mbuspico.toml: $(stat -c '%U:%G %a' /etc/mbuspico/mbuspico.toml)"
else fail "/etc/mbuspico/mbuspico.toml: $(cat /etc/mbuspico/mbuspico.toml 2>&1)"; fi
pid=$(systemctl show -p MainPID --value mbuspico)
if [ "$(systemctl is-active mbuspico)" = active ] && [ "$pid" -gt 0 ]; then pass "mbuspico.service active, pid $pid"
else fail "mbuspico.service: $(systemctl status mbuspico --no-pager 2>&1 | tail -5)"; fi
limit=$(awk '/Max open files/ {print $4}' "/proc/$pid/limits")
if [ "$limit" = 4224 ]; then pass "open files limit $limit"; else fail "open files limit $limit"; fi
user=$(stat -c %U "/proc/$pid")
groups=$(awk '/^Groups:/ {$1=""; print}' "/proc/$pid/status")
dialout=$(getent group dialout | cut -d: -f3)
case " $groups " in *" $dialout "*) pass "runs as $user with the dialout group ($dialout)" ;; *) fail "groups $groups, dialout $dialout" ;; esac
[ "$user" = mbuspico ] || fail "runs as $user"
state=$(tr '\0' '\n' < "/proc/$pid/environ" | sed -n 's/^STATE_DIRECTORY=//p')
if [ "$state" = /var/lib/mbuspico ]; then pass "STATE_DIRECTORY=$state ($(stat -c '%U %a' /var/lib/mbuspico))"
else fail "STATE_DIRECTORY=$state"; fi
systemctl restart mbuspico
sleep 3
i=0
until curl -fsS -u admin:Check-Pa55 "http://127.0.0.1:$port/" 2>/dev/null | grep -q meterNumber; do
  i=$((i + 1)); [ $i -lt 90 ] || break; sleep 1
done
if journalctl -u mbuspico --no-pager -o cat | grep -qi 'traceback\|permission denied\|read-only'; then
  fail "the journal: $(journalctl -u mbuspico --no-pager -o cat | grep -i 'traceback\|permission denied\|read-only' | head -3)"
else pass "restarted with the saved file, serving again after ${i} s; no error in the journal"; fi
journalctl -u mbuspico -u mbuspico-meter --no-pager -o short-monotonic > /root/systemd-journal.txt 2>&1
echo "done" >> "$out"
systemctl poweroff
