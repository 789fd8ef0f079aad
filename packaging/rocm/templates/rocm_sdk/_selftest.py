"""``rocm-sdk test``: run the ``rocm_sdk.tests`` unittest suite with a plain report.

Prints ``PASS name``, ``FAIL name: reason`` or ``SKIP name: reason`` per check (a test, or each
sub-test of a test that has them), then ``N passed, N failed, N skipped``; optionally writes the
results as JUnit XML. Returns 1 if any check failed.
"""

from __future__ import annotations

import os
import re
import time
import traceback
import unittest
import xml.etree.ElementTree as ET
from typing import Any, List, NamedTuple, Optional, Sequence, Set, Tuple

PASS = "PASS"
FAIL = "FAIL"
SKIP = "SKIP"
_XML_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


class Result(NamedTuple):
    name: str
    status: str
    reason: str = ""
    seconds: float = 0.0

    def line(self) -> str:
        return f"{self.status} {self.name}" + (f": {self.reason}" if self.reason else "")


def check_name(test: Any) -> str:
    """A sub-test's ``check`` parameter, else the test's one-line docstring, else its id."""
    params = getattr(test, "params", None)
    if params is not None and "check" in params:
        return str(params["check"])
    if hasattr(test, "test_case"):  # a sub-test without a name
        return str(test)
    description = test.shortDescription() if hasattr(test, "shortDescription") else None
    return str(description or test.id())


def _reason(test: Any, err: Tuple[Any, Any, Any]) -> str:
    kind, value, tb = err
    if isinstance(value, AssertionError):
        text = str(value)
    else:
        frames = traceback.extract_tb(tb)
        where = ""
        if frames:
            where = f" (at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno})"
        text = f"{kind.__name__}: {value}{where}"
    return " ".join(text.split())


class ReportingResult(unittest.TestResult):
    """Collects one Result per check and prints each as it completes."""

    def __init__(self) -> None:
        super().__init__()
        self.results: List[Result] = []
        self._with_subtests: Set[str] = set()
        self._last = time.monotonic()

    def _add(self, test: Any, status: str, reason: str = "") -> None:
        now = time.monotonic()
        parent = getattr(test, "test_case", None)
        if parent is not None:
            self._with_subtests.add(parent.id())
        result = Result(check_name(test), status, reason, now - self._last)
        self._last = now
        self.results.append(result)
        print(result.line(), flush=True)

    def startTest(self, test: unittest.TestCase) -> None:
        super().startTest(test)
        self._last = time.monotonic()

    def addSuccess(self, test: unittest.TestCase) -> None:
        super().addSuccess(test)
        if test.id() not in self._with_subtests:
            self._add(test, PASS)

    def addFailure(self, test: unittest.TestCase, err: Any) -> None:
        super().addFailure(test, err)
        self._add(test, FAIL, _reason(test, err))

    def addError(self, test: unittest.TestCase, err: Any) -> None:
        super().addError(test, err)
        self._add(test, FAIL, _reason(test, err))

    def addSkip(self, test: unittest.TestCase, reason: str) -> None:
        super().addSkip(test, reason)
        self._add(test, SKIP, reason)

    def addSubTest(self, test: unittest.TestCase, subtest: Any, err: Any) -> None:
        super().addSubTest(test, subtest, err)
        self._with_subtests.add(test.id())
        if err is None:
            self._add(subtest, PASS)
        else:
            self._add(subtest, FAIL, _reason(subtest, err))

    def addExpectedFailure(self, test: unittest.TestCase, err: Any) -> None:
        super().addExpectedFailure(test, err)
        self._add(test, PASS, "failed as expected")

    def addUnexpectedSuccess(self, test: unittest.TestCase) -> None:
        super().addUnexpectedSuccess(test)
        self._add(test, FAIL, "passed but was expected to fail")

    def count(self, status: str) -> int:
        return sum(1 for result in self.results if result.status == status)


def suite(names: Optional[Sequence[str]] = None) -> unittest.TestSuite:
    from rocm_sdk.tests import MODULES

    loader = unittest.TestLoader()
    return loader.loadTestsFromNames(list(names or MODULES))


def run(*, junitxml: Optional[str] = None, names: Optional[Sequence[str]] = None) -> int:
    """Run the self tests; 0 if none failed."""
    started = time.monotonic()
    result = ReportingResult()
    suite(names).run(result)
    passed, failed, skipped = result.count(PASS), result.count(FAIL), result.count(SKIP)
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    if junitxml:
        write_junit(result.results, junitxml, time.monotonic() - started)
    return 1 if failed else 0


def write_junit(results: Sequence[Result], path: str, seconds: float) -> None:
    """Write ``results`` as JUnit XML (one testsuite, one testcase per check)."""
    attributes = {
        "name": "rocm-sdk test",
        "tests": str(len(results)),
        "failures": str(sum(1 for result in results if result.status == FAIL)),
        "errors": "0",
        "skipped": str(sum(1 for result in results if result.status == SKIP)),
        "time": f"{seconds:.3f}",
    }
    suites = ET.Element("testsuites", attributes)
    suite_element = ET.SubElement(suites, "testsuite", attributes)
    for result in results:
        case = ET.SubElement(
            suite_element,
            "testcase",
            {"classname": "rocm_sdk", "name": result.name, "time": f"{result.seconds:.3f}"},
        )
        reason = _XML_UNSAFE.sub("?", result.reason)
        if result.status == FAIL:
            ET.SubElement(case, "failure", {"message": reason}).text = reason
        elif result.status == SKIP:
            ET.SubElement(case, "skipped", {"message": reason})
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    ET.ElementTree(suites).write(path, encoding="utf-8", xml_declaration=True)
