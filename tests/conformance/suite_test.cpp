// The one instantiation of the conformance suite: every TEST_P of the fixture
// `backend` (in every file of tests/conformance/) runs once per registered
// backend, so a backend is covered as soon as it registers.
#include "tests/conformance/driver.hpp"

namespace ringside::conformance {

INSTANTIATE_TEST_SUITE_P(conformance, backend, testing::ValuesIn(backend_names()), param_name);

}  // namespace ringside::conformance
