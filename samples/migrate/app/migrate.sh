# The "migration": idempotent, records each run so a test can see it ran exactly once per up.
set -e
echo "schema v2" > /data/schema.txt
echo "run $(date +%s)" >> /data/migrations.log
cp /data/schema.txt /data/index.html
