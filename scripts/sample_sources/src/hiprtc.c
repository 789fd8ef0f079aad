#include <hip/hip_runtime.h>
#include <hip/hiprtc.h>
#include <stddef.h>

hiprtcResult hiprtcVersion(int *major, int *minor) {
  if (major == NULL || minor == NULL) return HIPRTC_ERROR_INVALID_INPUT;
  int version = hipGetVersion();
  *major = version / 10000000;
  *minor = version / 100000 % 100;
  return HIPRTC_SUCCESS;
}

const char *hiprtcGetErrorString(hiprtcResult result) {
  return result == HIPRTC_SUCCESS ? "HIPRTC_SUCCESS" : "HIPRTC_ERROR_INVALID_INPUT";
}
