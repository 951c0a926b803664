"""Mission, fence and rally storage and the MAVLink mission protocol, as ArduCopter 4.7 runs it.

Upload: MISSION_COUNT -> the vehicle asks with MISSION_REQUEST (not _INT) for each seq, re-asks
after 1 s of silence and gives up after 8 s (OPERATION_CANCELLED, "Mission upload timeout").
A bad item ends the upload at once and leaves the stored list cut to the new count, new items in
front and old ones behind (what the recording shows). Download mirrors it; item 0 of a mission
is home (0/0/0 until home exists) and items without a location come back in frame 0.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Protocol

from pymavlink.dialects.v20 import ardupilotmega as mav

from agridrone.sim.fence import FENCE_COMMANDS, Fence, FenceInvalid, FlatFrame

MISSION, FENCE, RALLY = 0, 1, 2
TYPE_NAMES = {MISSION: "mission", FENCE: "fence", RALLY: "rally"}

ACCEPTED, ERROR, UNSUPPORTED, NO_SPACE = 0, 1, 3, 4
INVALID_PARAM5_X, INVALID_PARAM6_Y, INVALID_SEQUENCE, DENIED, OPERATION_CANCELLED = 10, 11, 13, 14, 15

RALLY_POINT = 5100
UPLOAD_TIMEOUT_S = 8.0
REREQUEST_S = 1.0
MAX_ITEMS = {MISSION: 700, FENCE: 84, RALLY: 10}

# Navigation commands (they carry a location and keep their frame on download).
NAV_WITH_LOCATION = frozenset({16, 17, 18, 19, 21, 22, 30, 31, 82, 94})
# Everything ArduCopter's mission accepts; anything else is UNSUPPORTED.
MISSION_COMMANDS = NAV_WITH_LOCATION | frozenset({
    20, 92, 93, 112, 113, 114, 115, 176, 177, 178, 179, 181, 182, 183, 184, 186, 189, 195, 197, 201, 202, 203,
    205, 206, 207, 208, 211, 215, 216, 217, 218, 222, 600, 601, 1000, 2000, 2001, 2500, 2501, 42600, 42702, 42703})


@dataclass(frozen=True)
class Item:
    seq: int
    frame: int
    command: int
    param1: float = 0.0
    param2: float = 0.0
    param3: float = 0.0
    param4: float = 0.0
    x: int = 0  # latitude * 1e7
    y: int = 0  # longitude * 1e7
    z: float = 0.0
    autocontinue: int = 1
    mission_type: int = MISSION

    @property
    def lat_deg(self) -> float:
        return self.x / 1e7

    @property
    def lon_deg(self) -> float:
        return self.y / 1e7


def item_from_message(msg) -> Item:
    """MISSION_ITEM_INT or MISSION_ITEM (float degrees) -> Item."""
    if msg.get_type() == "MISSION_ITEM":
        x, y = int(round(msg.x * 1e7)), int(round(msg.y * 1e7))
    else:
        x, y = int(msg.x), int(msg.y)
    return Item(int(msg.seq), int(msg.frame), int(msg.command), float(msg.param1), float(msg.param2),
                float(msg.param3), float(msg.param4), x, y, float(msg.z), int(msg.autocontinue),
                int(getattr(msg, "mission_type", 0)))


def item_for_download(item: Item) -> Item:
    """What ArduCopter sends back for a stored item (frames rewritten as recorded)."""
    if item.mission_type == FENCE:
        return replace(item, frame=0, z=0.0)
    if item.mission_type == MISSION and item.command not in NAV_WITH_LOCATION:
        return replace(item, frame=0, x=0, y=0, z=0.0)
    return item


class Host(Protocol):
    """What the protocol needs from the autopilot."""

    now_s: float

    def send(self, channel, msg) -> None: ...

    def text(self, severity: int, text: str) -> None: ...

    def is_booted(self) -> bool: ...

    def home_item(self) -> Item: ...

    def flat_frame(self) -> FlatFrame: ...

    def on_store_changed(self, mission_type: int) -> None: ...


@dataclass
class _Upload:
    channel: object
    mission_type: int
    count: int
    target_system: int
    target_component: int
    expected: int = 0
    last_rx_s: float = 0.0
    last_request_s: float = 0.0
    new_items: list | None = None


class MissionStore:
    """The three stored lists and the upload/download state machine."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.lists: dict[int, list[Item]] = {MISSION: [], FENCE: [], RALLY: []}
        self.fence = Fence()
        self.upload: _Upload | None = None

    # --- queries
    def count(self, mission_type: int) -> int:
        return len(self.lists[mission_type])

    def mission(self) -> list[Item]:
        return list(self.lists[MISSION])

    @property
    def receiving(self) -> bool:
        return self.upload is not None

    # --- protocol
    def _ack(self, channel, sysid: int, compid: int, mission_type: int, result: int) -> None:
        self.host.send(channel, mav.MAVLink_mission_ack_message(target_system=sysid, target_component=compid,
                                                                type=result, mission_type=mission_type))

    def _request(self, up: _Upload) -> None:
        self.host.send(up.channel, mav.MAVLink_mission_request_message(
            target_system=up.target_system, target_component=up.target_component, seq=up.expected,
            mission_type=up.mission_type))
        up.last_request_s = self.host.now_s

    def handle(self, channel, msg) -> bool:
        """Handle a mission-protocol message; returns False if it is not one."""
        kind = msg.get_type()
        sysid, compid = msg.get_srcSystem(), msg.get_srcComponent()
        mtype = int(getattr(msg, "mission_type", 0))
        if mtype not in self.lists:
            if kind in ("MISSION_COUNT", "MISSION_REQUEST_LIST", "MISSION_CLEAR_ALL"):
                self._ack(channel, sysid, compid, mtype, UNSUPPORTED)
                return True
            return kind.startswith("MISSION_")
        if kind == "MISSION_COUNT":
            self._on_count(channel, msg, sysid, compid, mtype)
        elif kind in ("MISSION_ITEM_INT", "MISSION_ITEM"):
            self._on_item(channel, msg, sysid, compid)
        elif kind == "MISSION_REQUEST_LIST":
            if self.upload is not None:
                self._ack(channel, sysid, compid, mtype, DENIED)
            else:
                self.host.send(channel, mav.MAVLink_mission_count_message(
                    target_system=sysid, target_component=compid, count=self.count(mtype), mission_type=mtype))
        elif kind in ("MISSION_REQUEST_INT", "MISSION_REQUEST"):
            self._on_request(channel, msg, sysid, compid, mtype, as_int=(kind == "MISSION_REQUEST_INT"))
        elif kind == "MISSION_CLEAR_ALL":
            if self.upload is not None and self.upload.mission_type == mtype:
                self.upload = None
            self.lists[mtype] = []
            if mtype == FENCE:
                self.fence = Fence()
            self.host.on_store_changed(mtype)
            self._ack(channel, sysid, compid, mtype, ACCEPTED)
        elif kind == "MISSION_ACK":
            pass  # the end of a download; nothing to do
        else:
            return False
        return True

    def _on_count(self, channel, msg, sysid, compid, mtype) -> None:
        count = int(msg.count)
        if not self.host.is_booted():
            self.host.text(4, "Only 0 items are supported")
            self._ack(channel, sysid, compid, mtype, NO_SPACE)
            return
        if count > MAX_ITEMS[mtype]:
            self._ack(channel, sysid, compid, mtype, NO_SPACE)
            return
        if count == 0:
            self.upload = None
            self.lists[mtype] = []
            if mtype == FENCE:
                self.fence = Fence()
            self.host.on_store_changed(mtype)
            self._ack(channel, sysid, compid, mtype, ACCEPTED)
            return
        up = _Upload(channel, mtype, count, sysid, compid, last_rx_s=self.host.now_s)
        if mtype == MISSION:
            # ArduCopter writes mission items as they arrive, into a list cut to the new count.
            del self.lists[MISSION][count:]
        else:
            up.new_items = []  # fence and rally are staged and swapped in only when complete
        self.upload = up
        self._request(up)

    def _fail(self, up: _Upload, result: int) -> None:
        self.upload = None
        self._ack(up.channel, up.target_system, up.target_component, up.mission_type, result)
        self.host.on_store_changed(up.mission_type)

    def _on_item(self, channel, msg, sysid, compid) -> None:
        up = self.upload
        mtype = int(getattr(msg, "mission_type", 0))
        if up is None or up.mission_type != mtype:
            return  # ArduPilot ignores items nobody asked for
        up.last_rx_s = self.host.now_s
        item = item_from_message(msg)
        if item.seq != up.expected:
            self._ack(channel, sysid, compid, mtype, INVALID_SEQUENCE)
            return
        result = self._check(item)
        if result != ACCEPTED:
            self._fail(up, result)
            return
        if mtype == MISSION:
            if item.seq < len(self.lists[MISSION]):
                self.lists[MISSION][item.seq] = item
            else:
                self.lists[MISSION].append(item)
        else:
            up.new_items.append(item)
        up.expected += 1
        if up.expected < up.count:
            self._request(up)
            return
        self._finish(up)

    def _check(self, item: Item) -> int:
        if item.mission_type == MISSION:
            if item.seq > 0 and item.command not in MISSION_COMMANDS:
                return UNSUPPORTED
        elif item.mission_type == FENCE:
            if item.command not in FENCE_COMMANDS:
                return UNSUPPORTED
        elif item.command != RALLY_POINT:
            return UNSUPPORTED
        if abs(item.x) > 90 * 10**7:
            return INVALID_PARAM5_X
        if abs(item.y) > 180 * 10**7:
            return INVALID_PARAM6_Y
        return ACCEPTED

    def _finish(self, up: _Upload) -> None:
        self.upload = None
        if up.mission_type == FENCE:
            try:
                fence = Fence.from_items(up.new_items, self.host.flat_frame())
            except FenceInvalid as err:
                self.host.text(4, str(err))
                self.host.text(4, "Fence validation failed")
                self._ack(up.channel, up.target_system, up.target_component, FENCE, ERROR)
                return
            self.fence = fence
            self.lists[FENCE] = up.new_items
            self.host.text(7, "Fence Indexed OK")
        elif up.mission_type == RALLY:
            self.lists[RALLY] = up.new_items
        else:
            self.host.text(6, "Flight plan received")
        self.host.on_store_changed(up.mission_type)
        self._ack(up.channel, up.target_system, up.target_component, up.mission_type, ACCEPTED)

    def _on_request(self, channel, msg, sysid, compid, mtype, *, as_int: bool) -> None:
        seq = int(msg.seq)
        items = self.lists[mtype]
        if seq >= len(items):
            self._ack(channel, sysid, compid, mtype, INVALID_SEQUENCE)
            return
        item = self.host.home_item() if (mtype == MISSION and seq == 0) else item_for_download(items[seq])
        common = dict(target_system=sysid, target_component=compid, seq=seq, frame=item.frame,
                      command=item.command, current=0, autocontinue=item.autocontinue, param1=item.param1,
                      param2=item.param2, param3=item.param3, param4=item.param4, z=item.z, mission_type=mtype)
        if as_int:
            out = mav.MAVLink_mission_item_int_message(x=item.x, y=item.y, **common)
        else:
            out = mav.MAVLink_mission_item_message(x=item.x / 1e7, y=item.y / 1e7, **common)
        self.host.send(channel, out)

    def tick(self) -> None:
        """Re-requests and the upload timeout, on simulated time."""
        up = self.upload
        if up is None:
            return
        now = self.host.now_s
        if now - up.last_rx_s >= UPLOAD_TIMEOUT_S - 1e-9:
            self.host.text(4, "Mission upload timeout")
            self._fail(up, OPERATION_CANCELLED)
        elif now - up.last_request_s >= REREQUEST_S - 1e-9:
            self._request(up)


SendFn = Callable[[object, object], None]
