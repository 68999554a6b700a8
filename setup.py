"""Ship the recipes of configs/ inside the wheel, as the package folder modelkit/configs.

configs/ stays at the top of the repository (where `modelkit train configs/text/cold.yaml` finds
it in a clone); building the package copies its YAML files into the built package, so that a pip
install can run `modelkit train text/cold`. Everything else is in pyproject.toml.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

CONFIGS = Path(__file__).parent / "configs"


class BuildWithRecipes(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads configs/ itself (modelkit.recipes)
            return
        target = Path(self.build_lib) / "modelkit" / "configs"
        for recipe in sorted(CONFIGS.rglob("*.yaml")):
            destination = target / recipe.relative_to(CONFIGS)
            destination.parent.mkdir(parents=True, exist_ok=True)
            self.copy_file(str(recipe), str(destination))


setup(cmdclass={"build_py": BuildWithRecipes})
