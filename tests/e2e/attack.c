/* The attacker of net_faults::net_bridge_cannot_reach_host_loopback: runs inside a container
 * (built with `cc -static` by the test) and crafts frames on a packet socket (CAP_NET_RAW, in
 * docker's default set), addressed to the bridge's MAC.
 *
 *   attack tcp4 IF SRC DSTMAC DST PORT MS   SYN from SRC (an unused address of the subnet; ARP
 *                                           for it is answered), handshake completed on a
 *                                           SYN-ACK, then "hello\n" sent
 *   attack tcp6 IF -   DSTMAC DST PORT MS   SYN from the interface's global IPv6 address
 *   attack udp4 IF SRC DSTMAC DST PORT -    one datagram "from SRC\n" from SRC (may be spoofed)
 *
 * Prints one word: SYNACK (the handshake was answered), RST (refused: the port was reached),
 * NONE (no answer within MS milliseconds), SENT (udp4), or ERROR: ... */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int sock, ifindex, v6;
static uint8_t mymac[6], dstmac[6];
static uint8_t src4[4], dst4[4], src6[16], dst6[16];
static uint16_t sport, dport;

static void die(const char *what) {
    printf("ERROR: %s\n", what);
    exit(1);
}

static uint32_t sum16(const uint8_t *p, size_t n, uint32_t s) {
    for (size_t i = 0; i + 1 < n; i += 2) s += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (n & 1) s += (uint32_t)(p[n - 1] << 8);
    return s;
}

static uint16_t fold(uint32_t s) {
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return (uint16_t)~s;
}

static void put16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = v & 0xff; }
static void put32(uint8_t *p, uint32_t v) { put16(p, v >> 16); put16(p + 2, v & 0xffff); }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get32(const uint8_t *p) { return (uint32_t)get16(p) << 16 | get16(p + 2); }

static void send_frame(const uint8_t *dst, uint16_t type, const uint8_t *payload, size_t n) {
    uint8_t f[1600];
    memcpy(f, dst, 6);
    memcpy(f + 6, mymac, 6);
    put16(f + 12, type);
    memcpy(f + 14, payload, n);
    struct sockaddr_ll to = {0};
    to.sll_family = AF_PACKET;
    to.sll_ifindex = ifindex;
    to.sll_halen = 6;
    memcpy(to.sll_addr, dst, 6);
    if (sendto(sock, f, 14 + n, 0, (struct sockaddr *)&to, sizeof to) < 0) die("sendto");
}

/* An IP packet carrying `l4` (protocol `proto`, checksum field at `csum_at`) to the bridge. */
static void send_ip(uint8_t proto, uint8_t *l4, size_t n, size_t csum_at) {
    uint8_t p[1500];
    uint32_t s;
    if (v6) {
        memset(p, 0, 40);
        p[0] = 0x60;
        put16(p + 4, (uint16_t)n);
        p[6] = proto;
        p[7] = 64;
        memcpy(p + 8, src6, 16);
        memcpy(p + 24, dst6, 16);
        s = sum16(src6, 16, 0);
        s = sum16(dst6, 16, s);
        s += (uint32_t)n + proto;
        put16(l4 + csum_at, 0);
        put16(l4 + csum_at, fold(sum16(l4, n, s)));
        memcpy(p + 40, l4, n);
        send_frame(dstmac, 0x86dd, p, 40 + n);
    } else {
        memset(p, 0, 20);
        p[0] = 0x45;
        put16(p + 2, (uint16_t)(20 + n));
        put16(p + 6, 0x4000);
        p[8] = 64;
        p[9] = proto;
        memcpy(p + 12, src4, 4);
        memcpy(p + 16, dst4, 4);
        put16(p + 10, fold(sum16(p, 20, 0)));
        s = sum16(src4, 4, 0);
        s = sum16(dst4, 4, s);
        s += (uint32_t)n + proto;
        put16(l4 + csum_at, 0);
        put16(l4 + csum_at, fold(sum16(l4, n, s)));
        memcpy(p + 20, l4, n);
        send_frame(dstmac, 0x0800, p, 20 + n);
    }
}

static void send_tcp(uint32_t seq, uint32_t ack, uint8_t flags, const char *data) {
    uint8_t t[100] = {0};
    size_t n = data ? strlen(data) : 0;
    put16(t, sport);
    put16(t + 2, dport);
    put32(t + 4, seq);
    put32(t + 8, ack);
    t[12] = 5 << 4;
    t[13] = flags;
    put16(t + 14, 64240);
    if (n) memcpy(t + 20, data, n);
    send_ip(6, t, 20 + n, 16);
}

/* Answers an ARP request for src4 in frame `f`. */
static void answer_arp(const uint8_t *f, size_t n) {
    if (n < 42 || get16(f + 20) != 1 || memcmp(f + 38, src4, 4) != 0) return;
    uint8_t a[28];
    put16(a, 1);
    put16(a + 2, 0x0800);
    a[4] = 6;
    a[5] = 4;
    put16(a + 6, 2);
    memcpy(a + 8, mymac, 6);
    memcpy(a + 14, src4, 4);
    memcpy(a + 18, f + 22, 6);
    memcpy(a + 24, f + 28, 4);
    send_frame(f + 22, 0x0806, a, sizeof a);
}

/* The TCP header of a reply to our SYN in frame `f`, or NULL. */
static const uint8_t *reply_of(const uint8_t *f, size_t n) {
    uint16_t type = get16(f + 12);
    if (!v6 && type == 0x0800 && n >= 14 + 20 + 20) {
        const uint8_t *ip = f + 14;
        size_t ihl = (size_t)(ip[0] & 15) * 4;
        if (ip[9] != 6 || memcmp(ip + 12, dst4, 4) || memcmp(ip + 16, src4, 4)) return NULL;
        if (n < 14 + ihl + 20) return NULL;
        const uint8_t *t = ip + ihl;
        return get16(t) == dport && get16(t + 2) == sport ? t : NULL;
    }
    if (v6 && type == 0x86dd && n >= 14 + 40 + 20) {
        const uint8_t *ip = f + 14;
        if (ip[6] != 6 || memcmp(ip + 8, dst6, 16) || memcmp(ip + 24, src6, 16)) return NULL;
        const uint8_t *t = ip + 40;
        return get16(t) == dport && get16(t + 2) == sport ? t : NULL;
    }
    return NULL;
}

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void own_ipv6(const char *ifname) {
    struct ifaddrs *all, *a;
    if (getifaddrs(&all)) die("getifaddrs");
    for (a = all; a; a = a->ifa_next) {
        if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET6 || strcmp(a->ifa_name, ifname)) continue;
        const uint8_t *x = ((struct sockaddr_in6 *)a->ifa_addr)->sin6_addr.s6_addr;
        if (x[0] == 0xfe && (x[1] & 0xc0) == 0x80) continue;
        memcpy(src6, x, 16);
        return;
    }
    die("no global IPv6 address on the interface");
}

int main(int argc, char **argv) {
    if (argc != 8) die("usage: attack tcp4|tcp6|udp4 IF SRC DSTMAC DST PORT MS");
    const char *mode = argv[1], *ifname = argv[2];
    v6 = strcmp(mode, "tcp6") == 0;
    sock = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
    if (sock < 0) die("packet socket (no CAP_NET_RAW?)");
    ifindex = (int)if_nametoindex(ifname);
    if (!ifindex) die("no such interface");
    struct sockaddr_ll me = {0};
    me.sll_family = AF_PACKET;
    me.sll_protocol = htons(ETH_P_ALL);
    me.sll_ifindex = ifindex;
    if (bind(sock, (struct sockaddr *)&me, sizeof me)) die("bind");
    struct ifreq ifr = {0};
    strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
    if (ioctl(sock, SIOCGIFHWADDR, &ifr)) die("SIOCGIFHWADDR");
    memcpy(mymac, ifr.ifr_hwaddr.sa_data, 6);
    if (sscanf(argv[4], "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &dstmac[0], &dstmac[1], &dstmac[2],
               &dstmac[3], &dstmac[4], &dstmac[5]) != 6)
        die("bad MAC");
    if (v6) {
        own_ipv6(ifname);
        if (inet_pton(AF_INET6, argv[5], dst6) != 1) die("bad IPv6 destination");
    } else if (inet_pton(AF_INET, argv[3], src4) != 1 || inet_pton(AF_INET, argv[5], dst4) != 1) {
        die("bad IPv4 address");
    }
    dport = (uint16_t)atoi(argv[6]);
    sport = (uint16_t)(40000 + getpid() % 20000);
    if (strcmp(mode, "udp4") == 0) {
        uint8_t u[64] = {0};
        char msg[32];
        snprintf(msg, sizeof msg, "from %s\n", argv[3]);
        size_t n = strlen(msg);
        put16(u, sport);
        put16(u + 2, dport);
        put16(u + 4, (uint16_t)(8 + n));
        memcpy(u + 8, msg, n);
        send_ip(17, u, 8 + n, 6);
        puts("SENT");
        return 0;
    }
    uint32_t iss = 0x1000 + (uint32_t)getpid();
    send_tcp(iss, 0, 0x02, NULL);
    long deadline = now_ms() + atol(argv[7]);
    uint8_t f[2048];
    for (;;) {
        long left = deadline - now_ms();
        if (left <= 0) break;
        struct pollfd p = {sock, POLLIN, 0};
        if (poll(&p, 1, (int)left) <= 0) continue;
        struct sockaddr_ll from;
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(sock, f, sizeof f, 0, (struct sockaddr *)&from, &fl);
        if (n < 14 || from.sll_pkttype == PACKET_OUTGOING) continue;
        if (!v6 && get16(f + 12) == 0x0806) {
            answer_arp(f, (size_t)n);
            continue;
        }
        const uint8_t *t = reply_of(f, (size_t)n);
        if (!t) continue;
        if (t[13] & 0x04) {
            puts("RST");
            return 0;
        }
        if ((t[13] & 0x12) == 0x12) {
            uint32_t ack = get32(t + 4) + 1;
            send_tcp(iss + 1, ack, 0x10, NULL);
            send_tcp(iss + 1, ack, 0x18, "hello\n");
            puts("SYNACK");
            return 0;
        }
    }
    puts("NONE");
    return 0;
}
