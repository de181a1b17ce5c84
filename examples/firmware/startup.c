/* startup.c - reset and fault handling for a Cortex-M4F (mps2-an386) with no C runtime start
   files: the vector table, copying .data from flash, zeroing .bss, painting the stack so its
   deepest use can be measured, enabling the FPU, then main(). Symbols come from mps2-an386.ld. */
#include <stdint.h>
#include <string.h>
#include "board.h"

extern uint32_t fw_data_start[], fw_data_end[], fw_data_load[], fw_bss_start[], fw_bss_end[];
extern uint32_t fw_stack_bottom[], fw_stack_top[];
int main(void);
void fw_reset(void);
void fw_fault(void);

#define FW_STACK_PAINT 0x5aa5c33cu

/* Cortex-M: word 0 is the initial stack pointer, then the handlers. Only the core's own
   exceptions are listed: the program uses no interrupts. */
__attribute__((section(".vectors"), used))
static void (*const fw_vectors[16])(void) = {
    (void (*)(void))(uintptr_t)fw_stack_top,
    fw_reset,
    fw_fault, /* NMI */
    fw_fault, /* HardFault */
    fw_fault, /* MemManage */
    fw_fault, /* BusFault */
    fw_fault, /* UsageFault */
    0, 0, 0, 0,
    fw_fault, /* SVCall */
    fw_fault, /* DebugMonitor */
    0,
    fw_fault, /* PendSV */
    fw_fault, /* SysTick */
};

/* Paints the unused part of the stack; runs on the reset stack, so it stops short of the
   current frame (uses only registers). */
static void fw_paint_stack(void) {
    uint32_t *p = fw_stack_bottom, *sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    while (p < sp - 16) *p++ = FW_STACK_PAINT;
}

size_t board_stack_used(void) {
    const uint32_t *p = fw_stack_bottom;
    while (p < fw_stack_top && *p == FW_STACK_PAINT) p++;
    return (size_t)((const char *)fw_stack_top - (const char *)p);
}

__attribute__((noreturn)) void fw_reset(void) {
    volatile uint32_t *cpacr = (volatile uint32_t *)0xE000ED88u;
    size_t n_data = (size_t)((char *)fw_data_end - (char *)fw_data_start);
    size_t n_bss = (size_t)((char *)fw_bss_end - (char *)fw_bss_start);
    /* Full access to CP10/CP11 (the FPU) before any float instruction runs. */
    *cpacr |= 0xFu << 20;
    __asm__ volatile("dsb\n isb" ::: "memory");
    memcpy(fw_data_start, fw_data_load, n_data);
    memset(fw_bss_start, 0, n_bss);
    fw_paint_stack();
    board_init();
    board_exit(main());
    for (;;) {}
}

static void fw_puts(const char *s) { while (*s) board_putc(*s++); }

/* Any fault ends the run with a failure: a test must never hang on a crashed firmware. */
void fw_fault(void) {
    uint32_t ipsr, cfsr = *(volatile uint32_t *)0xE000ED28u;
    int i;
    __asm__ volatile("mrs %0, ipsr" : "=r"(ipsr));
    fw_puts("\nFAULT: exception ");
    board_putc((char)('0' + (ipsr & 0xff) / 10));
    board_putc((char)('0' + (ipsr & 0xff) % 10));
    fw_puts(" CFSR 0x");
    for (i = 7; i >= 0; i--) board_putc("0123456789abcdef"[(cfsr >> (4 * i)) & 15]);
    board_putc('\n');
    board_exit(1);
    for (;;) {}
}
