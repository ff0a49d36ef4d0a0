import t from 'tap'
import kafkajs from 'kafkajs'
import { kafkaLogLevel } from '../../../src/kafka/client.js'

const { logLevel } = kafkajs

void t.test('group membership churn is info, whatever level kafkajs gave it', async (t) => {
  // the runner's warning, and the connection's error lines for heartbeats and joins during a rebalance
  t.equal(kafkaLogLevel(logLevel.WARN, 'The group is rebalancing, re-joining', 'The group is rebalancing, so a rejoin is needed'), 'info')
  t.equal(kafkaLogLevel(logLevel.ERROR, 'Response Heartbeat(key: 12, version: 3)', 'The group is rebalancing, so a rejoin is needed'), 'info')
  t.equal(kafkaLogLevel(logLevel.ERROR, 'The coordinator is not aware of this member, re-joining the group', 'x'), 'info')
  t.equal(kafkaLogLevel(logLevel.ERROR, 'Response JoinGroup(key: 11, version: 5)',
    'The group member needs to have a valid member id before actually entering a consumer group'), 'info')
  t.equal(kafkaLogLevel(logLevel.ERROR, 'Response OffsetCommit(key: 8, version: 5)', 'Specified group generation id is not valid'), 'info')
})

void t.test('anything else keeps its level', async (t) => {
  t.equal(kafkaLogLevel(logLevel.ERROR, 'Connection error: connect ECONNREFUSED 127.0.0.1:19092', undefined), 'error')
  t.equal(kafkaLogLevel(logLevel.ERROR, 'Response Produce(key: 0, version: 7)', 'This server is not the leader for that topic-partition'), 'error')
  t.equal(kafkaLogLevel(logLevel.WARN, 'KafkaJS v2.0.0 switched default partitioner', undefined), 'warn')
})
