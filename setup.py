"""All metadata lives in setup.cfg; this file only mends one setuptools defect.

setuptools' PEP 660 ``editable_wheel`` asks the distribution for ``has_data`` (the method is
``has_data_files``), so editable installs silently drop ``data_files``, and with them the ``.pth``
that installs the eventlet shim ``ryu-manager`` needs. Regular wheels carry it already.
"""

from setuptools import setup
from setuptools.command.editable_wheel import editable_wheel


class EditableWheelWithData(editable_wheel):  # type: ignore[misc]
    def _run_install(self, category: str) -> None:
        if category == "data":
            if self.distribution.has_data_files():
                self.run_command("install_data")
            return
        super()._run_install(category)


setup(cmdclass={"editable_wheel": EditableWheelWithData})
