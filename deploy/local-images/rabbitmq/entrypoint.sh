#!/bin/sh
# RABBITMQ_DEFAULT_USER / RABBITMQ_DEFAULT_PASS become the default user (made
# on first start), reachable from other containers; then RabbitMQ in the
# foreground as the rabbitmq user. The node is rabbit@<hostname>: give the
# container a fixed hostname so its data survives being re-created.
set -eu
mkdir -p /etc/rabbitmq
cat > /etc/rabbitmq/rabbitmq.conf <<CONF
default_user = ${RABBITMQ_DEFAULT_USER:-guest}
default_pass = ${RABBITMQ_DEFAULT_PASS:-guest}
loopback_users = none
listeners.tcp.default = 5672
CONF
chmod 640 /etc/rabbitmq/rabbitmq.conf
chown -R rabbitmq:rabbitmq /var/lib/rabbitmq /etc/rabbitmq
export HOME=/var/lib/rabbitmq
exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups /usr/lib/rabbitmq/bin/rabbitmq-server
