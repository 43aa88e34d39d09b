# A minimal NFLOG listener for the LOGMARK kernel test: binds one NFLOG group in the
# current network namespace and prints one JSON line per packet: prefix, packet mark
# (NFULA_MARK) and ct mark. The ct mark comes from NFULA_CT when the kernel can attach
# conntrack data to NFLOG (CONFIG_NETFILTER_NETLINK_GLUE_CT); kernels without it (like
# the 6.18 test machines) refuse NFULNL_CFG_F_CONNTRACK with EOPNOTSUPP, and then the ct
# mark is looked up by the packet's tuple in conntrack (`conntrack -G`), which is what
# the agent does too. Exits after `count` packets or `seconds`, whichever comes first.
import json, socket, struct, subprocess, sys, time

group, count, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
NETLINK_NETFILTER = 12
NFNL_SUBSYS_ULOG = 4
NFULNL_MSG_PACKET, NFULNL_MSG_CONFIG = 0, 1
NLM_F_REQUEST, NLM_F_ACK = 1, 4

def attr(t, payload):
    n = 4 + len(payload)
    return struct.pack("=HH", n, t) + payload + b"\0" * ((4 - n % 4) % 4)

def config(sock, attrs, seq, allow_fail=False):
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(group)) + b"".join(attrs)
    hdr = struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK, seq, 0)
    sock.send(hdr + body)
    data = sock.recv(65536)
    _, typ, _, _, _ = struct.unpack("=IHHII", data[:16])
    if typ == 2:  # NLMSG_ERROR
        err = struct.unpack("=i", data[16:20])[0]
        if err != 0:
            if allow_fail: return False
            raise SystemExit("nflog config failed: %d" % err)
    return True

def attrs_of(buf):
    out = {}
    i = 0
    while i + 4 <= len(buf):
        n, t = struct.unpack("=HH", buf[i:i + 4])
        if n < 4: break
        out[t & 0x7fff] = buf[i + 4:i + n]
        i += (n + 3) & ~3
    return out

s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
s.bind((0, 0))
config(s, [attr(1, struct.pack("B", 1))], 1)                      # NFULA_CFG_CMD: BIND
config(s, [attr(2, struct.pack(">IBB", 0xffff, 2, 0))], 2)        # NFULA_CFG_MODE: copy packet
glue = config(s, [attr(6, struct.pack(">H", 0x0004))], 3, True)   # NFULA_CFG_FLAGS: NFULNL_CFG_F_CONNTRACK

def ct_lookup(payload):
    """ct mark of the connection an IPv4 TCP/UDP packet belongs to, via conntrack -G."""
    if len(payload) < 24 or payload[0] >> 4 != 4 or payload[9] not in (6, 17): return None
    ihl = (payload[0] & 15) * 4
    src, dst = socket.inet_ntoa(payload[12:16]), socket.inet_ntoa(payload[16:20])
    sport, dport = struct.unpack(">HH", payload[ihl:ihl + 4])
    proto = "tcp" if payload[9] == 6 else "udp"
    r = subprocess.run(["conntrack", "-G", "-p", proto, "-s", src, "-d", dst, "--sport", str(sport), "--dport", str(dport)],
                       capture_output=True, text=True, timeout=5)
    for word in r.stdout.split():
        if word.startswith("mark="): return int(word[5:])
    return None
print("ready", "nfct" if glue else "lookup", flush=True)
deadline = time.time() + seconds
seen = 0
while seen < count and time.time() < deadline:
    s.settimeout(max(0.01, deadline - time.time()))
    try: data = s.recv(65536)
    except socket.timeout: break
    off = 0
    while off + 16 <= len(data):
        n, typ, _, _, _ = struct.unpack("=IHHII", data[off:off + 16])
        if n < 16: break
        if typ == (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET:
            a = attrs_of(data[off + 20:off + n])
            ev = {"prefix": a.get(10, b"").rstrip(b"\0").decode(), "mark": None, "ctmark": None}
            if 2 in a: ev["mark"] = struct.unpack(">I", a[2][:4])[0]
            if 18 in a:
                ct = attrs_of(a[18])
                if 8 in ct: ev["ctmark"] = struct.unpack(">I", ct[8][:4])[0]
            elif not glue and 9 in a:
                ev["ctmark"] = ct_lookup(a[9])
            print(json.dumps(ev), flush=True)
            seen += 1
        off += (n + 3) & ~3
