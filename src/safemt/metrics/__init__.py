"""safemt.metrics"""
