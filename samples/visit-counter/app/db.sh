# One connection = one command. INCR adds one to /data/count and answers the new value; GET answers it.
# mkdir is atomic, so it serialises concurrent connections (busybox has no flock).
read -r cmd
while ! mkdir /data/.lock 2>/dev/null; do usleep 1000; done
n=$(cat /data/count 2>/dev/null || echo 0)
[ "$cmd" = "INCR" ] && n=$((n + 1)) && echo "$n" > /data/count
rmdir /data/.lock
echo "$n"
