"""Publish moodwire's affect stream on ROS 2 as ROS4HRI topics (REP-155, hri_msgs).

    source /opt/ros/humble/setup.bash          # rclpy, and hri_msgs (apt: ros-humble-hri-msgs)
    python examples/ros4hri_bridge.py [--endpoint tcp://127.0.0.1:5560] [--id-prefix mw_]
    python examples/ros4hri_bridge.py --dry-run  # no ROS needed: prints each ROS message as JSON

Per face: hri_msgs/Expression on /humans/faces/<id>/expression, and /humans/faces/tracked; per
utterance: hri_msgs/LiveSpeech on /humans/voices/<id>/speech, and more (the mapping is
moodwire/ros4hri.py, the table docs/ros4hri.md). Runs until Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Protocol

import moodwire
from moodwire.ros4hri import Ros4hriError, Ros4hriIds, Ros4hriMapper, RosMessage

TOPICS = ["affect.frame", "affect.utterance"]
NODE_NAME = "moodwire_ros4hri"
QUEUE_DEPTH = 10
IDLE_PUBLISHER_S = 10.0  # a face's publisher goes after this long unused (the face left)
ROS_MISSING = ("the ROS 2 bridge needs rclpy and hri_msgs, which this Python cannot import ({why}): "
               "source your ROS 2 setup first (e.g. source /opt/ros/humble/setup.bash) and install "
               "hri_msgs (e.g. apt install ros-humble-hri-msgs); or pass --dry-run to print the messages")


class Sink(Protocol):
    def publish(self, message: RosMessage) -> None: ...
    def close(self) -> None: ...


class PrintSink:
    """--dry-run: one JSON object per ROS message on standard output."""

    def publish(self, message: RosMessage) -> None:
        print(json.dumps(message.to_dict()), flush=True)

    def close(self) -> None:
        pass


class RosSink:
    """rclpy publishers, made per topic on first use; a face's goes once the face has left."""

    def __init__(self) -> None:
        try:
            import rclpy
            from rosidl_runtime_py.set_message import set_message_fields
            from rosidl_runtime_py.utilities import get_message

            get_message("hri_msgs/msg/Expression")
        except (ImportError, ValueError, AttributeError) as exc:
            print(f"ros4hri_bridge: error: {ROS_MISSING.format(why=exc)}", file=sys.stderr)
            raise SystemExit(2) from None
        self._rclpy, self._get_message, self._set_fields = rclpy, get_message, set_message_fields
        rclpy.init()
        self._node = rclpy.create_node(NODE_NAME)
        self._publishers: dict[str, tuple[Any, Any, float]] = {}  # topic -> (publisher, class, last use)

    def publish(self, message: RosMessage) -> None:
        publisher, cls, _ = self._publishers.get(message.topic) or self._open(message)
        ros_msg = cls()
        try:
            self._set_fields(ros_msg, message.fields)
        except (AttributeError, TypeError, ValueError) as exc:
            raise Ros4hriError(f"{message.msg_type} on {message.topic}: the installed hri_msgs does not take "
                               f"these fields ({exc}); this bridge follows hri_msgs 2.x (ROS 2)") from None
        publisher.publish(ros_msg)
        self._publishers[message.topic] = (publisher, cls, time.monotonic())
        self._close_idle()

    def _open(self, message: RosMessage) -> tuple[Any, Any, float]:
        cls = self._get_message(message.msg_type)
        return self._node.create_publisher(cls, message.topic, QUEUE_DEPTH), cls, time.monotonic()

    def _close_idle(self) -> None:
        now = time.monotonic()
        for topic, (publisher, _, used) in list(self._publishers.items()):
            if topic.startswith("/humans/faces/") and topic.endswith("/expression") and now - used > IDLE_PUBLISHER_S:
                self._node.destroy_publisher(publisher)
                del self._publishers[topic]

    def close(self) -> None:
        self._node.destroy_node()
        self._rclpy.try_shutdown()


def run(args: argparse.Namespace, sink: Sink) -> int:
    """Map every affect message until --count/--seconds or Ctrl-C; returns how many were mapped."""
    mapper = Ros4hriMapper(Ros4hriIds(args.id_prefix), frame_id=args.frame_id)
    deadline = None if args.seconds is None else time.monotonic() + args.seconds
    mapped = 0
    with moodwire.subscribe(TOPICS, args.endpoint, curve=moodwire.curve_from_args(args), stream=args.stream) as stream:
        print(f"ros4hri_bridge: {', '.join(TOPICS)} from {args.endpoint}", file=sys.stderr, flush=True)
        try:
            while (args.count is None or mapped < args.count) and (deadline is None or time.monotonic() < deadline):
                msg = stream.get(timeout=0.25)
                if msg is not None:
                    publish_all(mapper, msg, sink)
                    mapped += 1
        except KeyboardInterrupt:
            pass
    return mapped


def publish_all(mapper: Ros4hriMapper, msg: moodwire.Message, sink: Sink) -> None:
    """Every ROS message of one moodwire message; one that cannot be mapped is reported and skipped."""
    try:
        for message in mapper.messages(msg):
            sink.publish(message)
    except Ros4hriError as exc:
        print(f"ros4hri_bridge: skipped a {type(msg).__name__}: {exc}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--endpoint", default=moodwire.DEFAULT_ENDPOINT, help="moodwire's public endpoint")
    moodwire.add_key_options(ap)
    ap.add_argument("--dry-run", action="store_true", help="print the ROS messages as JSON lines instead")
    ap.add_argument("--id-prefix", default="mw_", help="prefix of the ROS4HRI face and voice ids (default %(default)s)")
    ap.add_argument("--stream", help="only this moodwire stream (a camera's sources.stream); default: every stream")
    ap.add_argument("--frame-id", default="", help="header.frame_id of every message (default: empty)")
    ap.add_argument("--count", type=int, help="stop after N moodwire messages")
    ap.add_argument("--seconds", type=float, help="stop after S seconds")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sink: Sink = PrintSink() if args.dry_run else RosSink()
    try:
        mapped = run(args, sink)
    except moodwire.ConfigError as exc:
        print(f"ros4hri_bridge: error: {exc}", file=sys.stderr)
        return 2
    finally:
        sink.close()
    print(f"ros4hri_bridge: mapped {mapped} message(s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
