#include <hip/hip_runtime.h>
#include <rocblas/rocblas.h>
#include <stdio.h>

unsigned long crc32(unsigned long crc, const unsigned char *buf, unsigned int len);

static int version_string(char *buf, size_t len) {
  int hip = hipGetVersion();
  return snprintf(buf, len, "5.1.0 (HIP %d.%d)", hip / 10000000, hip / 100000 % 100);
}

rocblas_status rocblas_get_version_string_size(size_t *len) {
  if (len == NULL) return rocblas_status_invalid_pointer;
  *len = (size_t)version_string(NULL, 0) + 1;
  return rocblas_status_success;
}

rocblas_status rocblas_get_version_string(char *buf, size_t len) {
  if (buf == NULL) return rocblas_status_invalid_pointer;
  if ((size_t)version_string(buf, len) >= len) return rocblas_status_invalid_size;
  return rocblas_status_success;
}

rocblas_status rocblas_sample_checksum(const void *data, size_t len, unsigned long *crc) {
  if (data == NULL || crc == NULL) return rocblas_status_invalid_pointer;
  if (len > 0xffffffffUL) return rocblas_status_invalid_size;
  *crc = crc32(0, data, (unsigned int)len);
  return rocblas_status_success;
}
