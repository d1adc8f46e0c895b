# /etc/cron.d/tlsrpt: the operator jobs of tlsrpt(1), all off until you remove the "#"
# (or use the systemd timers in /lib/systemd/system/tlsrpt-*.timer instead).
# They run as tlsrpt, which can read the spool. This file is a conffile: your changes
# survive upgrades.
#
# Load new reports into the database (default sqlite:///var/lib/tlsrpt/tlsrpt.db).
#*/5 * * * *  tlsrpt  /usr/bin/tlsrpt load
#
# Prometheus metrics for node_exporter's textfile collector (the directory must be
# writable by tlsrpt).
#* * * * *    tlsrpt  /usr/bin/tlsrpt metrics --textfile /var/lib/prometheus/node-exporter/tlsrpt.prom
#
# The weekly digest, Mondays 07:00.
#0 7 * * 1    tlsrpt  /usr/bin/tlsrpt summary --since 7d --mail-to postmaster@localhost
