from django.apps import AppConfig


class VideosConfig(AppConfig):
    name = "academy.videos"
    label = "videos"

    def ready(self) -> None:
        from academy.videos.tracking import VideoTracking
        from jobbox import register

        register(VideoTracking())
