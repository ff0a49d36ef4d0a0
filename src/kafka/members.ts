/**
 * Removing a group member that is known to be dead (issue 8 finding 2). When kafkajs's consumer
 * restarts after a crash it joins as a new member; the member it was before could not leave (the
 * broker was away), so the coordinator keeps the group waiting for that member until its session
 * expires. The process knows the old member id and that it is gone, so it removes it (LeaveGroup
 * v3+ with member ids, KIP-345), and the new member's join completes at once. kafkajs has no
 * call for this; @platformatic/kafka's admin does, so it is used here for that one request.
 */
import { Admin } from '@platformatic/kafka'
import type { Config } from '../config/index.js'
import { tlsOptions } from './client.js'

export type RemoveMember = (groupId: string, memberId: string) => Promise<void>

export interface MemberRemover {
  remove: RemoveMember
  close(): Promise<void>
}

export function createMemberRemover(config: Readonly<Config>): MemberRemover {
  let admin: Admin | undefined
  const open = (): Admin => {
    if (admin !== undefined) return admin
    const tls = tlsOptions(config.kafka.tls)
    const sasl = config.kafka.sasl
    admin = new Admin({
      clientId: `${config.kafka.clientId}-member-remover`,
      bootstrapBrokers: [...config.kafka.brokers],
      connectTimeout: config.kafka.connectionTimeoutMs,
      retries: 0,
      ...(tls === undefined ? {} : { tls }),
      ...(sasl == null ? {} : { sasl: { mechanism: sasl.mechanism.toUpperCase() as 'PLAIN', username: sasl.username, password: sasl.password } }),
    })
    return admin
  }
  return {
    remove: async (groupId, memberId) => {
      await open().removeMembersFromConsumerGroup({ groupId, members: [{ memberId, reason: 'restarted after a crash' }] })
    },
    close: async () => {
      const a = admin
      admin = undefined
      await a?.close()
    },
  }
}
