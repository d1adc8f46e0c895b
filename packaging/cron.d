# /etc/cron.d/tlsrpt: the operator jobs of tlsrpt(1), all off until you remove the "#"
# (or use the systemd timers in /lib/systemd/system/tlsrpt-*.timer instead).
# They run as tlsrpt, which can read the spool (and owns it: prune removes from it).
# This file is a conffile: your changes survive upgrades.
#
# Load new reports into the database (default sqlite:///var/lib/tlsrpt/tlsrpt.db).
#*/5 * * * *  tlsrpt  /usr/bin/tlsrpt load
#
# Prometheus metrics for node_exporter's textfile collector (the directory must be
# writable by tlsrpt).
#* * * * *    tlsrpt  /usr/bin/tlsrpt metrics --textfile /var/lib/prometheus/node-exporter/tlsrpt.prom
#
# Check every domain of ours live (MTA-STS, MX certificates, STARTTLS, DANE), hourly,
# with a memory of what changed in /var/lib/tlsrpt/watch; findings are mailed by cron.
#17 * * * *   tlsrpt  /usr/bin/tlsrpt watch --spool /var/spool/tlsrpt --textfile /var/lib/prometheus/node-exporter/tlsrpt-watch.prom
#
# The weekly digest, Mondays 07:00.
#0 7 * * 1    tlsrpt  /usr/bin/tlsrpt summary --since 7d --mail-to postmaster@localhost
#
# Remove what is older than 400 days from the spool, Sundays 04:30: day files the
# database has loaded completely, quarantined messages, duplicate markers; and the
# database's reports older than 400 days (--keep-rows keeps them). Run it once by hand
# with --dry-run first (sudo -u tlsrpt tlsrpt prune ... --dry-run lists what would go).
#30 4 * * 0   tlsrpt  /usr/bin/tlsrpt prune --older-than 400d --spool /var/spool/tlsrpt --db sqlite:///var/lib/tlsrpt/tlsrpt.db
#
# Fetch reports from an IMAP mailbox (rc files: /usr/share/doc/tlsrpt-pipe/examples/
# fetchmail/ and getmail/; one of the two). fetchmail exits 1 when there was no mail.
#*/15 * * * *  tlsrpt  HOME=/var/lib/tlsrpt/fetchmail FETCHMAILHOME=/var/lib/tlsrpt/fetchmail /usr/bin/fetchmail --fetchmailrc /etc/tlsrpt/fetchmailrc --daemon 0 --silent || [ $? = 1 ]
#*/15 * * * *  tlsrpt  /usr/bin/getmail --getmaildir /var/lib/tlsrpt/getmail --rcfile /etc/tlsrpt/getmailrc --quiet
