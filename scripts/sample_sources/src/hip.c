#include <hip/hip_runtime.h>
#include <hsa/hsa.h>
#include <stddef.h>

static hsa_status_t count_gpu(hsa_agent_t agent, void *data) {
  hsa_device_type_t type;
  if (hsa_agent_get_device_type(agent, &type) != HSA_STATUS_SUCCESS) return HSA_STATUS_ERROR;
  if (type == HSA_DEVICE_TYPE_GPU) ++*(int *)data;
  return HSA_STATUS_SUCCESS;
}

int hipGetVersion(void) { return HIP_VERSION; }

hipError_t hipRuntimeGetVersion(int *runtimeVersion) {
  if (runtimeVersion == NULL) return hipErrorInvalidValue;
  *runtimeVersion = HIP_VERSION;
  return hipSuccess;
}

hipError_t hipGetDeviceCount(int *count) {
  if (count == NULL) return hipErrorInvalidValue;
  *count = 0;
  if (hsa_init() != HSA_STATUS_SUCCESS) return hipErrorNotInitialized;
  hsa_status_t status = hsa_iterate_agents(count_gpu, count);
  hsa_shut_down();
  if (status != HSA_STATUS_SUCCESS) return hipErrorNotInitialized;
  return *count > 0 ? hipSuccess : hipErrorNoDevice;
}

const char *hipGetErrorString(hipError_t error) {
  switch (error) {
    case hipSuccess: return "no error";
    case hipErrorInvalidValue: return "invalid argument";
    case hipErrorNotInitialized: return "initialization error";
    case hipErrorNoDevice: return "no ROCm-capable device is detected";
  }
  return "unknown error";
}
