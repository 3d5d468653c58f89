#!/bin/bash
# Start the broker as the apache/kafka image does, then give the services' user its SCRAM-SHA-512 credentials
# through the broker-local listener (127.0.0.1:9091: no other container can reach it). Re-running is harmless:
# the credentials are simply set again.
set -euo pipefail
/etc/kafka/docker/run &
broker=$!
until /opt/kafka/bin/kafka-broker-api-versions.sh --bootstrap-server 127.0.0.1:9091 > /dev/null 2>&1; do
    kill -0 "$broker" || exit 1
    sleep 2
done
/opt/kafka/bin/kafka-configs.sh --bootstrap-server 127.0.0.1:9091 --alter --entity-type users \
    --entity-name "$SCRAM_USER" --add-config "SCRAM-SHA-512=[password=$SCRAM_PASSWORD]"
touch /tmp/scram-user-ready
wait "$broker"
