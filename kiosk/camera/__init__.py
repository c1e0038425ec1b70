"""Frame sources: the Pi camera, image files and video files behind one interface.

Importing this package never imports picamera2; :func:`open_frame_source`
loads a backend only when it is asked for.
"""

from kiosk.camera.base import Frame, FrameSource, open_frame_source, to_gray
from kiosk.camera.files import ArrayFrameSource, ImageFrameSource, VideoFrameSource

__all__ = [
    "ArrayFrameSource",
    "Frame",
    "FrameSource",
    "ImageFrameSource",
    "VideoFrameSource",
    "open_frame_source",
    "to_gray",
]
