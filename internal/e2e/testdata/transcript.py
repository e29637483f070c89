"""What the Python client scripts print: each step's name and its answer, or
what went wrong, for the tests to compare between a direct connection and
one through ldapmux."""


class Transcript:
    def __init__(self, errors, describe):
        """errors: the exception classes a step may raise; describe turns one
        into the step's answer."""
        self.steps, self.errors, self.describe = [], errors, describe

    def run(self, name, fn):
        try:
            value = fn()
        except self.errors as e:
            value = self.describe(e)
        self.steps.append([name, value])
        return value
