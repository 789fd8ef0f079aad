#include <hsa/hsa.h>
#include <string.h>

const char *zlibVersion(void);

static const struct {
  const char *name;
  hsa_device_type_t type;
} agents[] = {
    {"Sample x86_64 CPU", HSA_DEVICE_TYPE_CPU},
    {"gfx942", HSA_DEVICE_TYPE_GPU},
    {"gfx1201", HSA_DEVICE_TYPE_GPU},
};
static const uint64_t agent_count = sizeof agents / sizeof agents[0];
static int init_count;

hsa_status_t hsa_init(void) {
  /* The real runtime inflates code objects with the bundled zlib. */
  if (zlibVersion()[0] != '1') return HSA_STATUS_ERROR;
  init_count++;
  return HSA_STATUS_SUCCESS;
}

hsa_status_t hsa_shut_down(void) {
  if (init_count == 0) return HSA_STATUS_ERROR_NOT_INITIALIZED;
  init_count--;
  return HSA_STATUS_SUCCESS;
}

hsa_status_t hsa_system_get_version(uint16_t *major, uint16_t *minor) {
  if (major == NULL || minor == NULL) return HSA_STATUS_ERROR_INVALID_ARGUMENT;
  *major = 1;
  *minor = 15;
  return HSA_STATUS_SUCCESS;
}

hsa_status_t hsa_iterate_agents(hsa_status_t (*callback)(hsa_agent_t agent, void *data),
                                void *data) {
  if (init_count == 0) return HSA_STATUS_ERROR_NOT_INITIALIZED;
  if (callback == NULL) return HSA_STATUS_ERROR_INVALID_ARGUMENT;
  for (uint64_t i = 0; i < agent_count; i++) {
    hsa_agent_t agent = {i + 1};
    hsa_status_t status = callback(agent, data);
    if (status != HSA_STATUS_SUCCESS) return status;
  }
  return HSA_STATUS_SUCCESS;
}

hsa_status_t hsa_agent_get_name(hsa_agent_t agent, char name[64]) {
  if (agent.handle == 0 || agent.handle > agent_count || name == NULL)
    return HSA_STATUS_ERROR_INVALID_ARGUMENT;
  strncpy(name, agents[agent.handle - 1].name, 63);
  name[63] = '\0';
  return HSA_STATUS_SUCCESS;
}

hsa_status_t hsa_agent_get_device_type(hsa_agent_t agent, hsa_device_type_t *type) {
  if (agent.handle == 0 || agent.handle > agent_count || type == NULL)
    return HSA_STATUS_ERROR_INVALID_ARGUMENT;
  *type = agents[agent.handle - 1].type;
  return HSA_STATUS_SUCCESS;
}
