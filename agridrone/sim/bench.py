"""``agridrone bench sim``: how fast the built-in simulator runs with clients attached.

Starts the simulator (a subprocess) at ``--speedup``, connects ``--clients`` TCP clients that each
request the usual streams (GLOBAL_POSITION_INT and ATTITUDE at 10 Hz, VFR_HUD 2 Hz, SYS_STATUS,
EKF_STATUS_REPORT, GPS_RAW_INT, MISSION_CURRENT 1 Hz, HOME_POSITION 0.5 Hz), reads everything for
``--seconds`` of wall time and prints the simulated seconds per wall second it achieved.
"""

from __future__ import annotations

STREAMS = ((33, 1e5), (30, 1e5), (74, 5e5), (1, 1e6), (193, 1e6), (24, 1e6), (42, 1e6), (242, 2e6))


def add_arguments(p) -> None:
    p.add_argument("--speedup", type=float, default=50.0, help="requested speed-up (default 50)")
    p.add_argument("--clients", type=int, default=2, help="TCP clients with the usual streams (default 2)")
    p.add_argument("--seconds", type=float, default=5.0, help="wall seconds to measure (default 5)")


def run(args) -> int:
    import socket
    import time

    from pymavlink.dialects.v20 import ardupilotmega as mav

    from agridrone.errors import ConfigError
    from agridrone.sim.launcher import launch_builtin

    if args.clients < 1 or args.seconds <= 0 or args.speedup <= 0:
        raise ConfigError(f"expected --clients >= 1, --seconds > 0 and --speedup > 0, got {args.clients}, "
                          f"{args.seconds}, {args.speedup}")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    handle = launch_builtin(port, speedup=args.speedup)
    try:
        clients = []
        for _ in range(args.clients):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.settimeout(0.01)
            m = mav.MAVLink(None, srcSystem=255, srcComponent=191)
            for msg_id, interval_us in STREAMS:
                sock.sendall(mav.MAVLink_command_long_message(1, 1, 511, 0, msg_id, interval_us, 0, 0, 0, 0, 0)
                             .pack(m))
            clients.append((sock, m))
        first = last = None
        count = 0
        t_end = time.monotonic() + args.seconds
        while time.monotonic() < t_end:
            for sock, m in clients:
                try:
                    data = sock.recv(262144)
                except socket.timeout:
                    continue
                for msg in m.parse_buffer(data) or []:
                    count += 1
                    tb = getattr(msg, "time_boot_ms", None)
                    if tb is not None:
                        now = (time.monotonic(), tb / 1000.0)
                        first = first or now
                        last = now
        for sock, _m in clients:
            sock.close()
    finally:
        handle.stop()
    if first is None or last is None or last[0] <= first[0]:
        print("no timestamped messages received")
        return 1
    achieved = (last[1] - first[1]) / (last[0] - first[0])
    print(f"requested speed-up {args.speedup:g}x, {args.clients} clients: achieved {achieved:.1f}x "
          f"({count / (last[0] - first[0]):.0f} messages/s received)")
    return 0
