"""Stand-in for ``google.colab.output``: records calls to the custom widget manager switch."""

custom_widget_manager_calls = 0


def enable_custom_widget_manager(version: str = "5.0.0a") -> None:
    global custom_widget_manager_calls
    custom_widget_manager_calls += 1


def disable_custom_widget_manager() -> None:
    pass
