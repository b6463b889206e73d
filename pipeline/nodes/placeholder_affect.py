"""PLACEHOLDER affect node, until the face, speech and fusion nodes exist.

For every video frame it publishes an ``affect.frame`` with ``valid: false``,
no persons and ``missing`` naming every modality, so that subscribers and
tests can rely on the topic's rate and timestamps. It estimates nothing.
"""

from __future__ import annotations

from pipeline.messages import AffectFrame, Message, VideoFrame
from pipeline.node import NodeContext, Outputs, run_step

MODALITIES = ("face", "voice", "text")
NOTE = "placeholder node: no affect estimators are running yet"


class PlaceholderAffectStep:
    inputs = ("video.frame",)

    def process(self, topic: str, msg: Message) -> Outputs:
        assert isinstance(msg, VideoFrame)
        yield "affect.frame", AffectFrame(
            frame_index=msg.frame_index, t_capture=msg.t_capture, valid=False,
            persons=[], missing=list(MODALITIES), note=NOTE,
        )

    def idle(self, now: int) -> Outputs:
        return ()


def main(ctx: NodeContext) -> int:
    run_step(ctx, PlaceholderAffectStep())
    return 0
