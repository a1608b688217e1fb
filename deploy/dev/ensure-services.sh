#!/usr/bin/env bash
# Start the machine's PostgreSQL and Mosquitto when they are not running (development and CI).
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
    for _ in $(seq 1 60); do port_open "$1" && return 0; sleep 0.5; done
    echo "service on port $1 did not come up" >&2; return 1
}

if ! port_open 5432; then
    if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
        echo "starting PostgreSQL"
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
        wait_port 5432
    else
        echo "PostgreSQL is not running on 127.0.0.1:5432 and no local cluster was found;" \
             "database tests will be skipped (set BATCHWIRE_TEST_PG)" >&2
    fi
fi

if ! port_open 1883; then
    if command -v mosquitto >/dev/null; then
        echo "starting Mosquitto"
        if [ -f /etc/mosquitto/mosquitto.conf ]; then
            mkdir -p /run/mosquitto && chown mosquitto: /run/mosquitto 2>/dev/null || true
            mosquitto -d -c /etc/mosquitto/mosquitto.conf
        else
            mosquitto -d -p 1883
        fi
        wait_port 1883
    else
        echo "Mosquitto is not running on 127.0.0.1:1883 and is not installed;" \
             "broker tests will be skipped (set BATCHWIRE_TEST_MQTT)" >&2
    fi
fi
